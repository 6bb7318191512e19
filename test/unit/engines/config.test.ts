import { expect } from 'chai';
import { MAX_ENGINE_CONFIG, parseCommonConfig } from '../../../src/engines/config';
import { getName, newEngine } from '../../../src/engines';
import { parseBindSpec, parseTsrunConfig } from '../../../src/engines/tsrun/config';
import { parseBinds } from '../../../src/cli/config';
import { tsrunConfig } from '../../helpers/configs';

const engineConfig = { ...tsrunConfig(), user: undefined, sessionDir: undefined };

describe('engine config', () => {
  it('parses the common part and names the engine', () => {
    const text = JSON.stringify({ engineName: 'tsrun', containerID: 'abc', engineConfig: {} });
    expect(parseCommonConfig(text).containerID).to.equal('abc');
    expect(getName(text)).to.equal('tsrun');
  });

  it('refuses text that is not JSON, naming the problem', () => {
    expect(() => parseCommonConfig('{nope')).to.throw(/not valid JSON/);
  });

  it('refuses a config larger than the limit', () => {
    expect(() => parseCommonConfig(Buffer.alloc(MAX_ENGINE_CONFIG + 1, 32))).to.throw(/too large/);
  });

  it('refuses a missing engine name and a container id with a slash', () => {
    expect(() => parseCommonConfig('{"containerID":"a","engineConfig":{}}')).to.throw(/engineName/);
    expect(() =>
      parseCommonConfig('{"engineName":"x","containerID":"a/b","engineConfig":{}}'),
    ).to.throw(/containerID/);
  });

  it('refuses an unknown engine name with the names it knows', () => {
    const text = JSON.stringify({ engineName: 'nope', containerID: 'a', engineConfig: {} });
    expect(() => newEngine(text)).to.throw(/unknown engine 'nope' \(known: tsrun\)/);
  });

  it('builds the tsrun engine from a valid config', () => {
    const text = JSON.stringify({
      engineName: 'tsrun',
      containerID: 'a',
      engineConfig,
    });
    const engine = newEngine(text);
    expect(engine.common.engineName).to.equal('tsrun');
    expect(engine.ops.config()).to.include({ image: '/img', action: 'exec' });
  });

  it('names the field of a tsrun config that has the wrong type', () => {
    expect(() => parseTsrunConfig({ ...engineConfig, image: 'relative' })).to.throw(
      /image must be/,
    );
    expect(() => parseTsrunConfig({ ...engineConfig, action: 'fly' })).to.throw(/action must be/);
    expect(() => parseTsrunConfig({ ...engineConfig, env: { A: 1 } })).to.throw(/env must be/);
    expect(() => parseTsrunConfig({ ...engineConfig, binds: [{ source: '/a' }] })).to.throw(
      /destination must be/,
    );
  });
});

describe('bind specs', () => {
  it('reads src, src:dst and src:dst:ro', () => {
    expect(parseBindSpec('/a')).to.deep.equal({ source: '/a', destination: '/a', readonly: false });
    expect(parseBindSpec('/a:/b')).to.deep.equal({
      source: '/a',
      destination: '/b',
      readonly: false,
    });
    expect(parseBindSpec('/a:/b:ro')).to.deep.equal({
      source: '/a',
      destination: '/b',
      readonly: true,
    });
  });

  it('refuses an unknown option and a relative destination', () => {
    expect(() => parseBindSpec('/a:/b:rx')).to.throw(/unknown option 'rx'/);
    expect(() => parseBindSpec('/a:b')).to.throw(/must be an absolute path/);
    expect(() => parseBindSpec('/a:/b:ro:x')).to.throw(/expected src/);
  });

  it('splits comma-separated values and makes sources absolute', () => {
    const binds = parseBinds(['/a,/b:/c', 'rel:/d:ro']);
    expect(binds.map((b) => b.destination)).to.deep.equal(['/a', '/c', '/d']);
    expect(binds[2].source).to.equal(`${process.cwd()}/rel`);
    expect(binds[2].readonly).to.equal(true);
  });
});
