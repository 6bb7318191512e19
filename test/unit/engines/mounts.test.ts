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

const user = ALICE;
const config = tsrunConfig;
const s = sessionPaths('/s');
const allDirs = () => true;

describe('mount plan', () => {
  it('mounts proc, sys, dev, tmp, var/tmp, home, identity files, then binds, in that order', () => {
    const cfg = config({ binds: [{ source: '/data', destination: '/mnt', readonly: true }] });
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
      '/etc/hosts',
      '/etc/resolv.conf',
      '/mnt',
    ]);
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
