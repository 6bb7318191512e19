import { expect } from 'chai';
import { ALICE, tsrunConfig } from '../../helpers/configs';
import {
  cwdMountPoint,
  overlayPath,
  planMountPoints,
  sessionPaths,
} from '../../../src/engines/tsrun/mounts';
import { makeGroup, makePasswd } from '../../../src/engines/tsrun/identity';
import { MOUNT_ATTR, MS } from '../../../src/native/constants';
import { defaultAdminConfig } from '../../../src/config/admin';
import { adminSettings } from '../../../src/engines/tsrun/policy';

const user = ALICE;
const config = tsrunConfig;
const s = sessionPaths('/s');
const allDirs = () => true;
const settings = adminSettings(defaultAdminConfig());

describe('mount plan', () => {
  it('mounts proc, sys, dev, tmp, var/tmp, home, identity files, admin binds, scratch, then binds, in that order', () => {
    const cfg = config({
      binds: [{ source: '/data', destination: '/mnt', readonly: true }],
      scratch: ['/scratch'],
      admin: {
        ...settings,
        binds: [{ source: '/etc/hosts', destination: '/etc/hosts', readonly: false }],
      },
    });
    const dests = planMountPoints(cfg, s, allDirs).map((p) => p.dest);
    expect(dests).to.deep.equal([
      '/proc',
      '/sys',
      '/dev',
      '/tmp',
      '/var/tmp',
      '/home/alice',
      '/etc/passwd',
      '/etc/group',
      '/etc/resolv.conf',
      '/etc/hosts',
      '/scratch',
      '/mnt',
    ]);
  });

  it("leaves out what the admin's mount and config directives turn off", () => {
    const off = {
      ...settings,
      mountProc: false,
      mountSys: false,
      mountDev: 'no' as const,
      mountHome: false,
      mountTmp: false,
      configPasswd: false,
      configGroup: false,
      configResolvConf: false,
    };
    expect(planMountPoints(config({ admin: off }), s, allDirs)).to.deep.equal([]);
  });

  it('takes home from --home, none with --no-home, and tmp and home from --workdir when contained', () => {
    const home = { source: '/data/h', destination: '/home/x' };
    const custom = planMountPoints(config({ homeBind: home }), s, allDirs);
    const bound = custom.find((p) => p.what === 'home')!;
    expect([bound.dest, bound.mounts[0].source]).to.deep.equal(['/home/x', '/data/h']);
    const none = planMountPoints(config({ noHome: true }), s, allDirs);
    expect(none.some((p) => p.what === 'home')).to.equal(false);
    const contained = planMountPoints(
      config({ contain: true, workdir: '/w', scratch: ['/s'] }),
      s,
      allDirs,
    );
    const source = (dest: string) => contained.find((p) => p.dest === dest)!.mounts[0].source;
    expect(source('/tmp')).to.equal('/w/tmp');
    expect(source('/var/tmp')).to.equal('/w/var_tmp');
    expect(source('/home/alice')).to.equal('/w/home');
    expect(source('/s')).to.equal('/w/scratch/0-s');
  });

  it('makes every bind nosuid and nodev, and a :ro bind read-only, recursively', () => {
    const cfg = config({
      binds: [
        { source: '/a', destination: '/ro', readonly: true },
        { source: '/b', destination: '/rw', readonly: false },
      ],
    });
    const points = planMountPoints(cfg, s, allDirs);
    const ro = points.find((p) => p.dest === '/ro')!;
    const rw = points.find((p) => p.dest === '/rw')!;
    expect(ro.mounts[0].flags).to.equal(MS.BIND | MS.REC);
    expect(ro.attrs).to.equal(MOUNT_ATTR.NOSUID | MOUNT_ATTR.NODEV | MOUNT_ATTR.RDONLY);
    expect(rw.attrs).to.equal(MOUNT_ATTR.NOSUID | MOUNT_ATTR.NODEV);
    expect(points.find((p) => p.dest === '/tmp')!.attrs).to.equal(rw.attrs);
    expect(points.find((p) => p.dest === '/dev')!.attrs).to.equal(MOUNT_ATTR.NOSUID);
  });

  it('gives a file bind a file mount point', () => {
    const cfg = config({
      binds: [{ source: '/etc/x.conf', destination: '/x.conf', readonly: false }],
    });
    const point = planMountPoints(cfg, s, () => false).find((p) => p.dest === '/x.conf')!;
    expect(point.kind).to.equal('file');
  });

  it('uses a tmpfs /dev and session-dir tmp and home with --contain', () => {
    const points = planMountPoints(config({ contain: true }), s, allDirs);
    expect(points.find((p) => p.dest === '/dev')!.mounts[0].fstype).to.equal('tmpfs');
    expect(points.find((p) => p.dest === '/tmp')!.mounts[0].source).to.equal('/s/tmp');
    expect(points.find((p) => p.dest === '/home/alice')!.mounts[0].source).to.equal('/s/home');
  });

  it('binds the current directory only when the image lacks it and nothing covers it', () => {
    const cfg = config();
    const planned = planMountPoints(cfg, s, allDirs);
    expect(cwdMountPoint(cfg, planned, false)?.dest).to.equal('/work/p');
    expect(cwdMountPoint(cfg, planned, true)).to.equal(undefined);
    expect(cwdMountPoint(config({ cwd: '/home/alice/x' }), planned, false)).to.equal(undefined);
    expect(cwdMountPoint(config({ cwd: '/tmp/y' }), planned, false)).to.equal(undefined);
    expect(cwdMountPoint(config({ contain: true }), planned, false)).to.equal(undefined);
    expect(cwdMountPoint(config({ cwd: '/' }), planned, false)).to.equal(undefined);
  });

  it('does not treat /proc as covering a current directory below it', () => {
    const cfg = config({ cwd: '/procedure' });
    expect(cwdMountPoint(cfg, planMountPoints(cfg, s, allDirs), false)?.dest).to.equal(
      '/procedure',
    );
  });

  it('escapes colons and commas in overlay paths', () => {
    expect(overlayPath('/a:b,c')).to.equal('/a\\:b\\,c');
  });
});

describe('identity files', () => {
  it('appends the user to a passwd file that lacks its uid', () => {
    const out = makePasswd('root:x:0:0:root:/root:/bin/sh', user);
    expect(out).to.equal(
      'root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000:Alice:/home/alice:/bin/bash\n',
    );
  });

  it('keeps a passwd file that has the uid', () => {
    const text = 'root:x:0:0:root:/root:/bin/sh\nbob:x:1000:1000::/home/bob:/bin/sh\n';
    expect(makePasswd(text, user)).to.equal(text);
  });

  it('adds missing groups and the user as a member of existing supplementary groups', () => {
    const out = makeGroup('root:x:0:\nsudo:x:27:bob\n', user);
    expect(out).to.equal('root:x:0:\nsudo:x:27:bob,alice\nalice:x:1000:\n');
  });
});
