// Image files as users have them: a SIF file written by Singularity 3.1, squashfs and ext3 files.
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FsType, primaryPartition, readSif } from '../../src/images/sif';
import { writeSif } from '../../src/images/sif-write';
import {
  BUSYBOX,
  busyboxImageFiles,
  expectNothingLeftBehind,
  expectNoNewLoopDevices,
  requireImage,
  SIF_FIXTURE,
  tsrun,
  tsrunAsync,
  waitFor,
  withoutAdminBinds,
} from '../helpers/run';

function sha256(file: string): string {
  return crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

function loopDevices(): string {
  return execFileSync('losetup', ['-a'], { encoding: 'utf8' });
}

describe('image files', function () {
  let dir: string;
  let squashfs: string;
  let ext3: string;

  this.beforeAll(function () {
    requireImage(this, BUSYBOX, 'run scripts/setup.sh');
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-images-'));
    ({ squashfs, ext3 } = busyboxImageFiles(dir));
  });
  this.afterAll(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });
  expectNothingLeftBehind();
  expectNoNewLoopDevices();

  it('runs a SIF file written by Singularity 3.1 from its squashfs partition', function () {
    if (!fs.existsSync(SIF_FIXTURE)) return this.skip();
    const r = tsrun(['exec', SIF_FIXTURE, 'sh', '-c', 'busybox | head -1; mount | head -1'], {
      env: withoutAdminBinds(),
    });
    expect(r.stderr).to.equal('');
    expect(r.stdout).to.match(/^BusyBox v1\./);
    expect(r.stdout).to.match(/\/dev\/loop\d+ on \/ type squashfs \(ro,/);
  });

  it('runs a squashfs file and an ext3 file, read-only', () => {
    for (const [image, fstype] of [
      [squashfs, 'squashfs'],
      [ext3, 'ext3'],
    ]) {
      const script = 'grep ^ID= /etc/os-release; mount | head -1';
      const r = tsrun(['exec', image, 'sh', '-c', script], { env: withoutAdminBinds() });
      expect(r.stdout).to.match(
        new RegExp(`^ID=busybox\\n/dev/loop\\d+ on / type ${fstype} \\(ro,`),
      );
    }
  });

  it('writes into an ext3 file with --writable and refuses --writable for squashfs', () => {
    const w = tsrun(['exec', '--writable', ext3, 'sh', '-c', 'echo kept > /written']);
    expect(w.status).to.equal(0);
    expect(tsrun(['exec', ext3, 'cat', '/written']).stdout).to.equal('kept\n');
    const r = tsrun(['exec', '--writable', squashfs, 'true']);
    expect(r.status).to.equal(255);
    expect(r.stderr).to.match(/--writable: image '.*' is squashfs, which is read-only/);
  });

  it('writes to a tmpfs with --writable-tmpfs, leaving the image unchanged', () => {
    const before = sha256(squashfs);
    const r = tsrun(['exec', '--writable-tmpfs', squashfs, 'sh', '-c', 'echo x > /new; cat /new']);
    expect(r.stdout).to.equal('x\n');
    expect(tsrun(['exec', squashfs, 'ls', '/new']).status).to.not.equal(0);
    expect(sha256(squashfs)).to.equal(before);
  });

  it("keeps writes in an --overlay directory's upper layer, and stacks it read-only with :ro", () => {
    const overlay = path.join(dir, 'overlay');
    fs.mkdirSync(overlay);
    const w = tsrun(['exec', '--overlay', overlay, squashfs, 'sh', '-c', 'echo kept > /etc/kept']);
    expect(w.status).to.equal(0);
    expect(fs.readFileSync(path.join(overlay, 'upper', 'etc', 'kept'), 'utf8')).to.equal('kept\n');
    const r = tsrun([
      'exec',
      '--overlay',
      `${overlay}:ro`,
      BUSYBOX,
      'sh',
      '-c',
      'cat /etc/kept; touch /etc/other 2>/dev/null || echo read-only',
    ]);
    expect(r.stdout).to.equal('kept\nread-only\n');
  });

  it('keeps writes in an ext3 --overlay file', () => {
    const file = path.join(dir, 'overlay.img');
    fs.writeFileSync(file, '');
    fs.truncateSync(file, 32 << 20);
    execFileSync('mkfs.ext3', ['-q', '-F', file], { stdio: 'ignore' });
    expect(tsrun(['exec', '--overlay', file, squashfs, 'sh', '-c', 'echo e > /e']).status).to.equal(
      0,
    );
    expect(tsrun(['exec', '--overlay', `${file}:ro`, squashfs, 'cat', '/e']).stdout).to.equal(
      'e\n',
    );
  });

  it('refuses two writable layers and a writable squashfs overlay', () => {
    const both = tsrun(['exec', '--writable-tmpfs', '--overlay', path.join(dir), squashfs, 'true']);
    expect(both.stderr).to.match(/exclude each other/);
    const sq = tsrun(['exec', '--overlay', squashfs, BUSYBOX, 'true']);
    expect(sq.stderr).to.match(/a squashfs overlay is read-only: add ':ro'/);
    expect([both.status, sq.status]).to.deep.equal([255, 255]);
  });

  it('builds a SIF file from a sandbox directory that reads back and runs', () => {
    const out = path.join(dir, 'built.sif');
    const b = tsrun(['build', out, BUSYBOX]);
    expect(b.status, b.stderr).to.equal(0);
    expect(b.stdout + b.stderr).to.equal('');
    const fd = fs.openSync(out, 'r');
    const sif = readSif(out, fd);
    fs.closeSync(fd);
    expect(sif.header).to.include({ version: '01', descriptorsTotal: 48, descriptorsFree: 47 });
    expect(primaryPartition(sif)).to.include({ id: 1, offset: 32768, groupID: 0xf0000001 });
    const r = tsrun(['exec', out, 'grep', '^ID=', '/etc/os-release']);
    expect(r.stdout).to.equal('ID=busybox\n');
  });

  it('unpacks a SIF file into a sandbox directory with build --sandbox', function () {
    if (!fs.existsSync(SIF_FIXTURE)) return this.skip();
    const out = path.join(dir, 'unpacked');
    expect(tsrun(['build', '--sandbox', out, SIF_FIXTURE]).status).to.equal(0);
    expect(fs.existsSync(path.join(out, '.singularity.d', 'runscript'))).to.equal(true);
    expect(tsrun(['exec', out, 'busybox', 'true']).status).to.equal(0);
    const again = tsrun(['build', '--sandbox', out, SIF_FIXTURE]);
    expect(again.status).to.equal(255);
    expect(again.stderr).to.match(/exists \(use --force to replace it\)/);
  });

  it("inspects a SIF file's labels, runscript, environment and descriptors", function () {
    if (!fs.existsSync(SIF_FIXTURE)) return this.skip();
    const r = tsrun(['inspect', '--json', SIF_FIXTURE]);
    expect(r.status, r.stderr).to.equal(0);
    const info = JSON.parse(r.stdout);
    expect(info.labels).to.include({ 'org.label-schema.usage.singularity.version': '3.1.0' });
    expect(info.runscript).to.match(/^#!\/bin\/sh/);
    expect(Object.keys(info.environment)).to.include('90-environment.sh');
    expect(info.sif.descriptors.map((d: { name: string }) => d.name)).to.deep.equal([
      '.',
      'squashfs-3234445416.img',
    ]);
    const text = tsrun(['inspect', SIF_FIXTURE]).stdout;
    expect(text).to.match(/^== labels\n/);
    expect(text).to.match(/== SIF descriptors\nID +TYPE/);
  });

  it('refuses an ext3 file that a loop device holds read-write', () => {
    const device = execFileSync('losetup', ['--find', '--show', ext3], { encoding: 'utf8' }).trim();
    try {
      const r = tsrun(['exec', ext3, 'true']);
      expect(r.status).to.equal(255);
      expect(r.stderr).to.contain(`is already attached read-write to ${device}`);
    } finally {
      execFileSync('losetup', ['-d', device]);
    }
  });

  it('refuses a sandbox directory on a file system mounted noexec', () => {
    const mnt = path.join(dir, 'noexec');
    fs.mkdirSync(mnt);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'noexec,size=64m', 'tsrun-test-noexec', mnt]);
    try {
      execFileSync('cp', ['-a', BUSYBOX, path.join(mnt, 'img')]);
      const r = tsrun(['exec', path.join(mnt, 'img'), 'true']);
      expect(r.status).to.equal(255);
      expect(r.stderr).to.match(/is on a file system mounted noexec: nothing in it can run/);
    } finally {
      execFileSync('umount', [mnt]);
    }
  });

  it("uses a SIF file's overlay partition: read-only, and taking the writes with --writable", async () => {
    const overlay = path.join(dir, 'sif-overlay.ext3');
    fs.writeFileSync(overlay, '');
    fs.truncateSync(overlay, 32 << 20);
    execFileSync('mkfs.ext3', ['-q', '-F', overlay], { stdio: 'ignore' });
    const out = path.join(dir, 'with-overlay.sif');
    const rootfs = { file: squashfs, fsType: FsType.Squash, name: 'rootfs' } as const;
    await writeSif(out, rootfs, [{ file: overlay, fsType: FsType.Ext3, name: 'overlay' }]);
    const w = tsrun(['exec', '--writable', out, 'sh', '-c', 'echo in-sif > /sif-file']);
    expect(w.status, w.stderr).to.equal(0);
    expect(tsrun(['exec', out, 'cat', '/sif-file']).stdout).to.equal('in-sif\n');
    const ro = tsrun(['exec', out, 'sh', '-c', 'touch /x 2>/dev/null || echo read-only']);
    expect(ro.stdout).to.equal('read-only\n');
  });

  it('refuses to build over its own source, and keeps the source', () => {
    const self = tsrun(['build', '--force', squashfs, squashfs]);
    expect(self.stderr).to.match(/is, holds or lies inside the source/);
    expect(tsrun(['exec', squashfs, 'true']).status).to.equal(0);
  });

  it('lets one container write an ext3 image and refuses a second one meanwhile', async () => {
    const first = tsrunAsync(['exec', '--writable', ext3, 'sh', '-c', 'echo ready; sleep 2']);
    await waitFor(() => first.stdout().includes('ready'), 10000);
    const second = tsrun(['exec', '--writable', ext3, 'true']);
    expect(second.status).to.equal(255);
    expect(second.stderr).to.match(/in use by another container|already attached read-write/);
    const reader = tsrun(['exec', ext3, 'true']);
    expect(reader.stderr).to.match(/in use|attached read-write/);
    expect((await first.done).status).to.equal(0);
  });

  it('refuses an overlay given twice and --writable beside an overlay', () => {
    const overlay = path.join(dir, 'overlay-twice');
    fs.mkdirSync(overlay, { recursive: true });
    const twice = tsrun([
      'exec',
      '--overlay',
      `${overlay}:ro`,
      '--overlay',
      overlay,
      squashfs,
      'true',
    ]);
    expect(twice.stderr).to.match(/is given twice/);
    const w = tsrun(['exec', '--writable', '--overlay', `${overlay}:ro`, BUSYBOX, 'true']);
    expect(w.stderr).to.match(/--writable and --overlay/);
  });

  it('refuses a truncated SIF file and a file that is no image, naming them', function () {
    if (!fs.existsSync(SIF_FIXTURE)) return this.skip();
    const truncated = path.join(dir, 'truncated.sif');
    fs.writeFileSync(truncated, fs.readFileSync(SIF_FIXTURE).subarray(0, 20000));
    const r = tsrun(['exec', truncated, 'true']);
    expect(r.status).to.equal(255);
    expect(r.stderr).to.match(/SIF file '.*truncated.sif': the descriptor table lies outside/);
    const junk = path.join(dir, 'junk.bin');
    fs.writeFileSync(junk, Buffer.from('\x7fELF\x02\x01\x01', 'latin1'));
    const j = tsrun(['exec', junk, 'true']);
    expect(j.status).to.equal(255);
    expect(j.stderr).to.match(/junk.bin': not a SIF, squashfs or ext3 image \(found bytes 7f 45/);
  });

  it('leaves no loop device after 50 runs of a SIF file', function () {
    if (!fs.existsSync(SIF_FIXTURE)) return this.skip();
    this.timeout(120000);
    const before = loopDevices();
    for (let i = 0; i < 50; i++) {
      expect(tsrun(['exec', SIF_FIXTURE, 'true']).status).to.equal(0);
    }
    expect(loopDevices()).to.equal(before);
  });
});
