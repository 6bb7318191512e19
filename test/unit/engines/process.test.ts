import { expect } from 'chai';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { hostEnvironment, requestedEnvironment } from '../../../src/cli/config';
import {
  buildEnvironment,
  CONTAINER_PATH,
  directEnvironment,
  parseEnvFile,
  scriptEnvironment,
} from '../../../src/engines/tsrun/environment';
import { tsrunConfig } from '../../helpers/configs';

describe('payload environment', () => {
  it("replaces the host's PATH and HOME and names the container", () => {
    const { env } = buildEnvironment(
      tsrunConfig({ image: '/imgs/app', env: { PATH: '/host/bin', HOME: '/x', KEEP: 'a=b\nc' } }),
    );
    expect(env).to.include({
      PATH: CONTAINER_PATH,
      HOME: '/home/alice',
      KEEP: 'a=b\nc',
      TSRUN_CONTAINER: '/imgs/app',
      TSRUN_NAME: 'app',
      SINGULARITY_CONTAINER: '/imgs/app',
      SINGULARITY_NAME: 'app',
      APPTAINER_CONTAINER: '/imgs/app',
    });
  });

  it('sets a prompt for shell only, and never passes the host PS1 or LD_LIBRARY_PATH', () => {
    const host = { PS1: '$ ', LD_LIBRARY_PATH: '/host/lib', PROMPT_COMMAND: 'x' };
    expect(buildEnvironment(tsrunConfig({ action: 'shell', env: host })).env.PS1).to.equal(
      'tsrun> ',
    );
    const { env } = buildEnvironment(tsrunConfig({ env: host }));
    expect(env).to.not.have.any.keys('PS1', 'LD_LIBRARY_PATH', 'PROMPT_COMMAND');
  });

  it('keeps only TERM, LANG and proxies with --cleanenv', () => {
    const host = { TERM: 'xterm', LANG: 'C.UTF-8', https_proxy: 'p', SECRET: 's', USER: 'u' };
    const { env } = buildEnvironment(tsrunConfig({ env: host, cleanEnv: true }));
    expect(env).to.include({ TERM: 'xterm', LANG: 'C.UTF-8', https_proxy: 'p' });
    expect(env).to.not.have.any.keys('SECRET', 'USER');
  });

  it('takes prefixed variables over the host, TSRUN_ENV_ over APPTAINERENV_ over SINGULARITYENV_, and --env over all', () => {
    const host = {
      A: 'host',
      SINGULARITYENV_A: 'singularity',
      SINGULARITYENV_B: 'singularity',
      APPTAINERENV_B: 'apptainer',
      APPTAINERENV_C: 'apptainer',
      TSRUN_ENV_C: 'tsrun',
      TSRUN_ENV_D: 'tsrun',
      'SINGULARITYENV_bad-name': 'x',
    };
    const e = buildEnvironment(tsrunConfig({ env: host, envSet: { D: 'flag', E: 'flag' } }));
    expect(e.overrides).to.deep.equal({
      A: 'singularity',
      B: 'apptainer',
      C: 'tsrun',
      D: 'flag',
      E: 'flag',
    });
    expect(e.env.A).to.equal('host');
    expect(e.env).to.not.have.any.keys('SINGULARITYENV_A', 'TSRUN_ENV_C', 'APPTAINERENV_B');
    expect(directEnvironment(e)).to.include({ A: 'singularity', D: 'flag' });
  });

  it('puts PREPEND_PATH and APPEND_PATH around the container PATH', () => {
    const host = { SINGULARITYENV_PREPEND_PATH: '/pre', APPTAINERENV_APPEND_PATH: '/post' };
    const e = buildEnvironment(tsrunConfig({ env: host }));
    expect(directEnvironment(e).PATH).to.equal(`/pre:${CONTAINER_PATH}:/post`);
    expect(scriptEnvironment(e)).to.include({
      __TSRUN_PREPEND_PATH: '/pre',
      __TSRUN_APPEND_PATH: '/post',
    });
  });

  it('hands the overrides to the action script by name', () => {
    const e = buildEnvironment(tsrunConfig({ envSet: { X: 'a "b"\n$c' } }));
    expect(scriptEnvironment(e)).to.include({
      X: 'a "b"\n$c',
      __TSRUN_OVERRIDES: 'X',
      __TSRUN_OVERRIDE_X: 'a "b"\n$c',
    });
  });

  it('gives back NODE_EXTRA_CA_CERTS and NODE_OPTIONS that the launcher moved aside', () => {
    const env = hostEnvironment({
      TSRUN_HOST_NODE_EXTRA_CA_CERTS: '/ca.pem',
      TSRUN_HOST_NODE_OPTIONS: '--inspect',
      TSRUN_ARGV_PLUS: '1',
      A: 'b',
    });
    expect(env).to.deep.equal({
      NODE_EXTRA_CA_CERTS: '/ca.pem',
      NODE_OPTIONS: '--inspect',
      A: 'b',
    });
  });
});

describe('--env and --env-file', () => {
  it('parses bare, quoted and exported values, comments and blank lines', () => {
    const text = [
      '# comment',
      '',
      'A=plain value',
      'export B=\'single $x "q"\'',
      'C="double \\"q\\" \\\\ line\\nnext"',
      'D=',
      'E=a=b',
    ].join('\n');
    expect(parseEnvFile(text, 'f.env')).to.deep.equal({
      A: 'plain value',
      B: 'single $x "q"',
      C: 'double "q" \\ line\nnext',
      D: '',
      E: 'a=b',
    });
  });

  it('names the line of a malformed line', () => {
    expect(() => parseEnvFile('A=1\nnot a line', 'f.env')).to.throw(
      "--env-file 'f.env' line 2: expected NAME=VALUE, found 'not a line'",
    );
    expect(() => parseEnvFile('1A=x', 'f.env')).to.throw(/line 1: '1A' is not a variable name/);
    expect(() => parseEnvFile('A="open', 'f.env')).to.throw(/line 1: unterminated double quote/);
    expect(() => parseEnvFile("A='open", 'f.env')).to.throw(/unterminated single quote/);
  });

  it('takes --env over --env-file, and refuses a bad --env and a missing file', () => {
    const file = path.join(os.tmpdir(), `tsrun-env-${process.pid}`);
    fs.writeFileSync(file, 'A=file\nB=file\n');
    try {
      expect(requestedEnvironment(['A=flag=1'], file)).to.deep.equal({ A: 'flag=1', B: 'file' });
    } finally {
      fs.rmSync(file);
    }
    expect(requestedEnvironment([], undefined)).to.equal(undefined);
    expect(() => requestedEnvironment(['NOEQUALS'])).to.throw(
      /--env 'NOEQUALS': expected NAME=VALUE/,
    );
    expect(() => requestedEnvironment([], '/nonexistent.env')).to.throw(
      "--env-file '/nonexistent.env': does not exist",
    );
    expect(() => requestedEnvironment(['__TSRUN_OVERRIDES=x'])).to.throw(/reserved/);
  });
});
