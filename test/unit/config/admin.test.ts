import { expect } from 'chai';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  adminConfigFile,
  DEFAULT_CONFIG_FILE,
  defaultAdminConfig,
  loadAdminConfig,
  parseAdminConfig,
} from '../../../src/config/admin';

const parse = (text: string) => parseAdminConfig(text, '/etc/t.conf');

describe('admin config (tsrun.conf)', () => {
  let dir: string;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-conf-'));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("has Singularity 3.1's defaults", () => {
    expect(defaultAdminConfig()).to.deep.equal({
      maxLoopDevices: 256,
      sharedLoopDevices: false,
      sessiondirMaxSize: 16,
      allowContainerSquashfs: true,
      allowContainerExtfs: true,
      allowContainerDir: true,
      allowPidNs: true,
      configPasswd: true,
      configGroup: true,
      configResolvConf: true,
      mountProc: true,
      mountSys: true,
      mountDev: 'yes',
      mountDevpts: true,
      mountHome: true,
      mountTmp: true,
      bindPath: [],
      userBindControl: true,
      memoryFsType: 'tmpfs',
      limitContainerOwners: [],
      limitContainerGroups: [],
      limitContainerPaths: [],
      rootDefaultCapabilities: 'full',
      mountSlave: true,
      mountHostfs: false,
      enableOverlay: 'try',
      mksquashfsPath: '',
    });
  });

  it('reads directives, comments, blank lines and extra spaces', () => {
    const conf = parse(
      [
        '# a comment',
        '',
        'max loop devices = 12',
        '  shared   loop devices=yes  ',
        'sessiondir max size = 100',
        'allow container extfs = no',
        '   # indented comment',
      ].join('\n'),
    );
    expect(conf.maxLoopDevices).to.equal(12);
    expect(conf.sharedLoopDevices).to.equal(true);
    expect(conf.sessiondirMaxSize).to.equal(100);
    expect(conf.allowContainerExtfs).to.equal(false);
    expect(conf.allowContainerSquashfs).to.equal(true);
  });

  it('names the line of a malformed line, an unknown directive and a bad value', () => {
    expect(() => parse('# ok\nmax loop devices 12')).to.throw(
      "tsrun.conf '/etc/t.conf' line 2: expected 'directive = value', found 'max loop devices 12'",
    );
    expect(() => parse('\n\nmax loop device = 3')).to.throw(
      /line 3: unknown directive 'max loop device'/,
    );
    expect(() => parse('shared loop devices = maybe')).to.throw(
      /line 1: 'shared loop devices' must be yes or no/,
    );
    expect(() => parse('max loop devices = -1')).to.throw(/line 1: .* whole number from 1/);
    expect(() => parse('max loop devices = 0x10')).to.throw(/whole number/);
    expect(() => parse('sessiondir max size =')).to.throw(/whole number/);
  });

  it('refuses a directive given twice, naming both lines', () => {
    expect(() => parse('max loop devices = 1\n\nmax loop devices = 2')).to.throw(
      /line 3: 'max loop devices' is given twice \(first on line 1\)/,
    );
  });

  it("accepts Singularity directives that match tsrun's behaviour and refuses the others", () => {
    const same = parse('enable underlay = yes\nalways use nv = no\nallow setuid = yes\n');
    expect(same).to.deep.equal(defaultAdminConfig());
    expect(() => parse('always use nv = yes')).to.throw(
      /line 1: 'always use nv = yes' is not supported by tsrun yet \(it accepts no\)/,
    );
    expect(() => parse('allow setuid = no')).to.throw(/not supported by tsrun yet/);
    expect(parse('enable underlay = no')).to.deep.equal(defaultAdminConfig());
    expect(() => parse('mount dev = sometimes')).to.throw(/one of yes, no, minimal/);
  });

  it('reads lists and repeated directives', () => {
    const conf = parse(
      'bind path = /etc/hosts\nbind path = /opt:/mnt\nlimit container paths = /a, /b ,\nmount dev = minimal',
    );
    expect(conf.bindPath).to.deep.equal(['/etc/hosts', '/opt:/mnt']);
    expect(conf.limitContainerPaths).to.deep.equal(['/a', '/b']);
    expect(conf.mountDev).to.equal('minimal');
  });

  it('loads a root-owned file and refuses one others can write or that is a symlink', function () {
    if (process.getuid!() !== 0) this.skip();
    const file = path.join(dir, 'good.conf');
    fs.writeFileSync(file, 'max loop devices = 7\n', { mode: 0o644 });
    expect(loadAdminConfig(file).maxLoopDevices).to.equal(7);
    fs.chmodSync(file, 0o666);
    expect(() => loadAdminConfig(file)).to.throw(
      /must be writable by root only \(its mode is 0666\)/,
    );
    fs.chmodSync(file, 0o644);
    fs.chownSync(file, 1000, 0);
    expect(() => loadAdminConfig(file)).to.throw(/must be owned by root, not uid 1000/);
    const link = path.join(dir, 'link.conf');
    fs.symlinkSync('/etc/hostname', link);
    expect(() => loadAdminConfig(link)).to.throw(/is a symlink/);
    expect(() => loadAdminConfig(path.join(dir, 'none.conf'))).to.throw(/does not exist/);
  });

  it("uses the install's file unless root names another", () => {
    expect(adminConfigFile({})).to.equal(DEFAULT_CONFIG_FILE);
    expect(fs.existsSync(DEFAULT_CONFIG_FILE), DEFAULT_CONFIG_FILE).to.equal(true);
    expect(loadAdminConfig(DEFAULT_CONFIG_FILE)).to.deep.equal({
      ...defaultAdminConfig(),
      bindPath: ['/etc/localtime', '/etc/hosts'],
    });
    if (process.getuid!() === 0) {
      expect(adminConfigFile({ TSRUN_CONF: 'x.conf' })).to.equal(path.resolve('x.conf'));
    }
  });
});
