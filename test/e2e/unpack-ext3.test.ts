// `tsrun build --sandbox` from ext3 images: the file system is mounted in a namespace of the
// unpack-ext3 process and copied with cp -a, so what debugfs would lose is kept, and nothing
// (mount, loop device, process, partial output) is left behind, also when it fails or is stopped.
import { expect } from 'chai';
import { execFileSync, spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FsType } from '../../src/images/sif';
import { writeSif } from '../../src/images/sif-write';
import {
  BUSYBOX,
  expectNothingLeftBehind,
  hostMounts,
  requireImage,
  tsrun,
  TSRUN,
  tsrunAsync,
  waitFor,
} from '../helpers/run';

function loopsOf(image: string): string {
  return execFileSync('losetup', ['-j', image], { encoding: 'utf8' });
}

/** The mount points that builds made in the temporary directory. */
function mountPoints(): string[] {
  return fs.readdirSync(os.tmpdir()).filter((name) => name.startsWith('tsrun-unpack-'));
}

/** user.* extended attributes through python3 (Node has no xattr calls). */
function xattr(file: string, value?: string): string {
  const code =
    value === undefined
      ? 'import os,sys; print(os.getxattr(sys.argv[1], "user.tsrun").decode(), end="")'
      : 'import os,sys; os.setxattr(sys.argv[1], "user.tsrun", sys.argv[2].encode())';
  return execFileSync('python3', ['-c', code, file, value ?? ''], { encoding: 'utf8' });
}

function mkfsExt3(image: string, from: string | null, mib: number): void {
  fs.writeFileSync(image, '');
  fs.truncateSync(image, mib << 20);
  const d = from === null ? [] : ['-d', from];
  execFileSync('mkfs.ext3', ['-q', '-F', ...d, image], { stdio: 'ignore' });
}

/** A busybox rootfs with the kinds of files that an unpack must keep. */
function specialTree(root: string): void {
  execFileSync('cp', ['-a', '--', BUSYBOX, root]);
  fs.writeFileSync(path.join(root, 'bin', 'suid'), '#!/bin/sh\n', { mode: 0o755 });
  fs.chmodSync(path.join(root, 'bin', 'suid'), 0o4755);
  fs.mkdirSync(path.join(root, 'shared'));
  fs.chmodSync(path.join(root, 'shared'), 0o2775);
  fs.mkdirSync(path.join(root, 'sticky'));
  fs.chmodSync(path.join(root, 'sticky'), 0o1777);
  fs.writeFileSync(path.join(root, 'data'), 'unpacked\n');
  fs.linkSync(path.join(root, 'data'), path.join(root, 'hardlink'));
  fs.symlinkSync('data', path.join(root, 'symlink'));
  fs.writeFileSync(path.join(root, 'owned'), 'x');
  fs.chownSync(path.join(root, 'owned'), 1234, 1234);
  execFileSync('mknod', ['-m', '0666', path.join(root, 'null'), 'c', '1', '3']);
  xattr(path.join(root, 'data'), 'kept');
}

describe('build --sandbox from ext3', function () {
  this.timeout(60000);
  let dir: string;
  let ext3: string;

  this.beforeAll(function () {
    requireImage(this, BUSYBOX, 'run scripts/setup.sh');
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-ext3-test-'));
    specialTree(path.join(dir, 'tree'));
    ext3 = path.join(dir, 'special.ext3');
    mkfsExt3(ext3, path.join(dir, 'tree'), 64);
  });
  this.afterAll(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });
  expectNothingLeftBehind();
  let mountPointsBefore: string[] = [];
  beforeEach(() => (mountPointsBefore = mountPoints()));
  afterEach(() => {
    expect(loopsOf(ext3), 'loop devices of the image').to.equal('');
    expect(mountPoints(), 'mount points of unpack-ext3').to.deep.equal(mountPointsBefore);
  });

  it('keeps setuid, setgid, sticky, symlinks, hard links, owners, device nodes and xattrs', () => {
    const out = path.join(dir, 'out');
    const mountsBefore = hostMounts();
    const r = tsrun(['build', '--sandbox', out, ext3]);
    expect(r.status, r.stderr).to.equal(0);
    expect(r.stdout + r.stderr).to.equal('');
    const st = (name: string) => fs.lstatSync(path.join(out, name));
    expect(st('bin/suid').mode & 0o7777).to.equal(0o4755);
    expect(st('shared').mode & 0o7777).to.equal(0o2775);
    expect(st('sticky').mode & 0o7777).to.equal(0o1777);
    expect(st('hardlink').ino).to.equal(st('data').ino);
    expect(fs.readlinkSync(path.join(out, 'symlink'))).to.equal('data');
    expect([st('owned').uid, st('owned').gid]).to.deep.equal([1234, 1234]);
    expect(st('null').isCharacterDevice()).to.equal(true);
    expect(st('null').rdev).to.equal(fs.statSync('/dev/null').rdev);
    expect(xattr(path.join(out, 'data'))).to.equal('kept');
    expect(loopsOf(ext3)).to.equal('');
    expect(hostMounts()).to.deep.equal(mountsBefore);
    expect(tsrun(['exec', out, 'cat', '/data']).stdout).to.equal('unpacked\n');
  });

  it('unpacks the ext3 partition of a SIF file', async () => {
    const sif = path.join(dir, 'ext3.sif');
    await writeSif(sif, { file: ext3, fsType: FsType.Ext3, name: 'rootfs' });
    const out = path.join(dir, 'from-sif');
    const r = tsrun(['build', '--sandbox', out, sif]);
    expect(r.status, r.stderr).to.equal(0);
    expect(fs.lstatSync(path.join(out, 'bin', 'suid')).mode & 0o7777).to.equal(0o4755);
    expect(loopsOf(sif)).to.equal('');
  });

  it('fails in one line naming the image when its superblock is damaged, leaving no output', () => {
    const bad = path.join(dir, 'bad.ext3');
    fs.copyFileSync(ext3, bad);
    // s_log_block_size: a block size no kernel takes; the magic stays, so it is still "ext3".
    const fd = fs.openSync(bad, 'r+');
    fs.writeSync(fd, Buffer.from([40, 0, 0, 0]), 0, 4, 1024 + 24);
    fs.closeSync(fd);
    const out = path.join(dir, 'from-bad');
    const r = tsrun(['build', '--sandbox', out, bad]);
    expect(r.status).to.equal(255);
    expect(r.stderr.trimEnd().split('\n')).to.have.lengthOf(1);
    expect(r.stderr).to.match(/unpacking ext3 image '.*bad\.ext3': not a sound ext3 file system/);
    expect(fs.existsSync(out)).to.equal(false);
    expect(loopsOf(bad)).to.equal('');
  });

  it('cannot unpack ext3 as a user other than root, and says it needs root', () => {
    fs.chmodSync(dir, 0o755);
    fs.chmodSync(ext3, 0o644);
    const out = path.join(dir, 'as-nobody');
    const asNobody = ['--reuid=65534', '--regid=65534', '--clear-groups'];
    const r = spawnSync('setpriv', [...asNobody, TSRUN, 'build', '--sandbox', out, ext3], {
      encoding: 'utf8',
      cwd: '/',
    });
    expect(r.status, r.stderr).to.equal(255);
    expect(r.stderr).to.match(/^tsrun: build .*: unpacking ext3 image '.*': needs root/);
    expect(fs.existsSync(out)).to.equal(false);
  });

  it('removes the partial output and leaves no mount when interrupted while copying', async () => {
    const big = path.join(dir, 'big');
    fs.mkdirSync(big);
    for (let i = 0; i < 16; i++)
      fs.writeFileSync(path.join(big, `f${i}`), crypto.randomBytes(24 << 20));
    const image = path.join(dir, 'big.ext3');
    mkfsExt3(image, big, 512);
    fs.rmSync(big, { recursive: true });
    const out = path.join(dir, 'interrupted');
    const build = tsrunAsync(['build', '--sandbox', out, image]);
    await waitFor(() => fs.existsSync(out), 20000);
    process.kill(build.pid, 'SIGINT');
    const r = await build.done;
    expect(r.status, r.stderr).to.equal(130);
    expect(fs.existsSync(out)).to.equal(false);
    expect(loopsOf(image)).to.equal('');
    fs.rmSync(image);
  });
});
