// The tsrun engine's RPC methods, served by the real RPC server process in a new mount namespace
// and driven at the protocol level. The cases of the first suite run in order on one server.
import { expect } from 'chai';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CLONE, MOUNT_ATTR, MS } from '../../src/native/constants';
import { RpcClient } from '../../src/rpc/client';
import { MethodTypes } from '../../src/engines/tsrun/rpc-types';
import { missingRequirement, ServerProcess, startServer } from './harness';
import { rejection } from '../helpers/rpc';

const S_IFCHR = 0o020000;
const skipReason = missingRequirement();

function call<M extends keyof MethodTypes>(c: RpcClient, method: M, args: MethodTypes[M]['args']) {
  return c.call<MethodTypes[M]['result']>(method, args);
}

/** Skips the suite, saying what is missing, when this machine cannot run it. */
function requireMachine(ctx: Mocha.Context): void {
  if (skipReason === undefined) return;
  console.log(`      skipped: ${skipReason}`);
  ctx.skip();
}

const mountinfo = () => fs.readFileSync('/proc/self/mountinfo', 'utf8');

describe('tsrun RPC methods, server in a new mount namespace', function () {
  const name = `tsrun-rpc-test-${process.pid}`;
  const escape = `tsrun-rpc-escape-${process.pid}`;
  let base: string;
  let root: string;
  let server: ServerProcess;
  let c: RpcClient;
  let hostMounts: string;
  let baselineFds: number;

  before(async function () {
    requireMachine(this);
    hostMounts = mountinfo();
    base = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-rpc-'));
    fs.chmodSync(base, 0o755); // SetFsID's user must be able to reach root
    root = path.join(base, 'root');
    for (const dir of ['tmpfs', 'root', 'newroot']) fs.mkdirSync(path.join(base, dir));
    fs.symlinkSync('/etc', path.join(root, 'work'));
    fs.symlinkSync(`/etc/${escape}`, path.join(root, 'out'));
    server = await startServer(CLONE.NEWNS);
    c = server.client;
  });

  after(() => {
    if (base !== undefined) fs.rmSync(base, { recursive: true, force: true });
  });

  it('makes its mount namespace private', async () => {
    const flags = MS.REC | MS.PRIVATE;
    const args = { source: null, target: '/', fstype: null, flags, data: null };
    expect(await call(c, 'Mount', args)).to.equal(null);
    baselineFds = server.openFds();
  });

  it('mounts a tmpfs that only its own namespace sees', async () => {
    const dir = path.join(base, 'tmpfs');
    await call(c, 'Mount', {
      source: 'tmpfs',
      target: dir,
      fstype: 'tmpfs',
      flags: MS.NOSUID,
      data: 'size=1m,mode=755',
    });
    const file = path.join(dir, 'hello');
    await call(c, 'WriteFile', { path: file, data: Buffer.from('hi there'), mode: 0o640 });
    expect(await call(c, 'Stat', { path: file })).to.deep.equal({
      type: 'file',
      mode: 0o640,
      uid: 0,
      gid: 0,
      size: 8,
    });
    expect(
      Buffer.from(await call(c, 'ReadFile', { path: file, maxSize: 100 })).toString(),
    ).to.equal('hi there');
    expect(fs.existsSync(file), 'file visible on the host').to.equal(false);
  });

  it('refuses to read a file over maxSize with EFBIG', async () => {
    const file = path.join(base, 'tmpfs', 'hello');
    expect((await rejection(call(c, 'ReadFile', { path: file, maxSize: 3 }))).code).to.equal(
      'EFBIG',
    );
  });

  it("creates directories inside root through a symlink to the host's /etc", async () => {
    const created = await call(c, 'MkdirAll', { path: `/work/${name}/sub`, mode: 0o755, root });
    expect(created).to.deep.equal(['/etc', `/etc/${name}`, `/etc/${name}/sub`]);
    expect(fs.existsSync(`/etc/${name}`), 'created on the host').to.equal(false);
    const stats = fs.statSync(path.join(root, 'etc', name, 'sub'));
    expect(stats.isDirectory()).to.equal(true);
    expect(stats.mode & 0o7777).to.equal(0o755);
  });

  it('creates nothing when every directory exists', async () => {
    expect(await call(c, 'MkdirAll', { path: `/work/${name}`, mode: 0o755, root })).to.deep.equal(
      [],
    );
  });

  it('resolves a path inside root and names the missing components', async () => {
    fs.symlinkSync(`etc/${name}`, path.join(root, 'rel'));
    expect(await call(c, 'Resolve', { path: `/work/${name}/a/b`, root })).to.deep.equal({
      resolved: `/etc/${name}`,
      missing: ['a', 'b'],
      type: 'dir',
    });
    expect(await call(c, 'Resolve', { path: '/rel/../../../rel/x', root })).to.deep.equal({
      resolved: `/etc/${name}`,
      missing: ['x'],
      type: 'dir',
    });
  });

  it('stats a final symlink itself and answers null for a missing path', async () => {
    expect(await call(c, 'Stat', { path: '/work', root })).to.have.property('type', 'symlink');
    expect(await call(c, 'Stat', { path: '/nothing/here', root })).to.equal(null);
  });

  it('touches an empty file once and leaves an existing one alone', async () => {
    const args = { path: `/work/${name}/file`, mode: 0o600, root };
    await call(c, 'Touch', args);
    const host = path.join(root, 'etc', name, 'file');
    expect(fs.statSync(host).size).to.equal(0);
    expect(fs.statSync(host).mode & 0o7777).to.equal(0o600);
    fs.writeFileSync(host, 'kept');
    await call(c, 'Touch', args);
    expect(fs.readFileSync(host, 'utf8')).to.equal('kept');
  });

  it('writes through a symlink pointing out of root to a file inside root', async () => {
    await call(c, 'WriteFile', { path: '/out', data: Buffer.from('x'), mode: 0o644, root });
    expect(fs.existsSync(`/etc/${escape}`), 'written on the host').to.equal(false);
    expect(fs.readFileSync(path.join(root, 'etc', escape), 'utf8')).to.equal('x');
  });

  it('creates a symlink, and follows it inside root only', async () => {
    await call(c, 'Symlink', { target: '/etc/passwd', linkpath: `/work/${name}/pw`, root });
    expect(fs.readlinkSync(path.join(root, 'etc', name, 'pw'))).to.equal('/etc/passwd');
    const read = call(c, 'ReadFile', { path: `/work/${name}/pw`, maxSize: 1 << 20, root });
    expect((await rejection(read)).code).to.equal('ENOENT');
  });

  it('creates a character device like /dev/null', async () => {
    const file = `/work/${name}/null`;
    await call(c, 'Mknod', { path: file, mode: S_IFCHR | 0o666, major: 1, minor: 3, root });
    const stats = fs.lstatSync(path.join(root, 'etc', name, 'null'));
    expect(stats.isCharacterDevice()).to.equal(true);
    expect(stats.rdev).to.equal((1 << 8) | 3);
    expect(await call(c, 'Stat', { path: file, root })).to.include({ type: 'char', mode: 0o666 });
  });

  it('reports a failed call with its errno, syscall and the path as asked', async () => {
    const err = await rejection(call(c, 'Mkdir', { path: `/work/${name}`, mode: 0o755, root }));
    expect([err.code, err.op, err.path]).to.deep.equal(['EEXIST', 'mkdir', `/work/${name}`]);
  });

  it('reports a failed mount with its mount point, fstype, MS_* flags and data', async () => {
    const bind = call(c, 'Mount', {
      source: '/no/such/dir',
      target: `/work/${name}`,
      fstype: null,
      flags: MS.BIND | MS.REC,
      data: null,
      root,
    });
    const err = await rejection(bind);
    expect([err.code, err.op, err.path]).to.deep.equal(['ENOENT', 'mount', `/work/${name}`]);
    expect(err.message).to.equal(
      `mount '/no/such/dir' -> '/work/${name}' (no fstype, MS_BIND|MS_REC, no data): ENOENT`,
    );
  });

  it('creates files as the fs uid and gid set by SetFsID', async () => {
    await call(c, 'MkdirAll', { path: '/shared', mode: 0o777, root });
    await call(c, 'SetFsID', { uid: 1000, gid: 1000 });
    try {
      await call(c, 'Touch', { path: '/shared/mine', mode: 0o644, root });
    } finally {
      await call(c, 'SetFsID', { uid: 0, gid: 0 });
    }
    const stats = fs.statSync(path.join(root, 'shared', 'mine'));
    expect([stats.uid, stats.gid]).to.deep.equal([1000, 1000]);
  });

  it('answers an unknown method with ENOSYS and bad arguments with EINVAL', async () => {
    expect((await rejection(c.call('Format', { disk: '/dev/sda' }))).code).to.equal('ENOSYS');
    const relative = c.call('Mkdir', { path: 'relative', mode: 0o755 });
    expect((await rejection(relative)).code).to.equal('EINVAL');
    const misspelt = c.call('Mkdir', { path: '/x', mode: 0o755, rot: root });
    expect((await rejection(misspelt)).message).to.contain("'rot'");
  });

  it('tells its mount namespace differs from the caller and its uts one does not', async () => {
    expect(await call(c, 'HasNamespace', { pid: process.pid, kind: 'mnt' })).to.equal(true);
    expect(await call(c, 'HasNamespace', { pid: process.pid, kind: 'uts' })).to.equal(false);
    const bad = c.call('HasNamespace', { pid: process.pid, kind: 'time-travel' });
    expect((await rejection(bad)).code).to.equal('EINVAL');
  });

  it('binds a directory found inside sourceRoot onto a mount point found inside root', async () => {
    await call(c, 'MkdirAll', { path: '/bindpoint', mode: 0o755, root });
    await call(c, 'Mount', {
      source: `/work/${name}`,
      sourceRoot: root,
      target: '/bindpoint',
      root,
      fstype: null,
      flags: MS.BIND,
      data: null,
    });
    expect(await call(c, 'Stat', { path: '/bindpoint/sub', root })).to.include({ type: 'dir' });
    expect(fs.existsSync(path.join(root, 'bindpoint', 'sub')), 'bound on the host').to.equal(false);
    await call(c, 'Umount', { target: path.join(root, 'bindpoint'), flags: 0 });
    expect(await call(c, 'Stat', { path: '/bindpoint/sub', root })).to.equal(null);
  });

  it('makes a bind read-only with MountSetattr, keeping it a bind of the same files', async () => {
    await call(c, 'MkdirAll', { path: '/ro-src', mode: 0o755, root });
    await call(c, 'MkdirAll', { path: '/ro-dst', mode: 0o755, root });
    const bind = { source: path.join(root, 'ro-src'), target: '/ro-dst', root, fstype: null };
    await call(c, 'Mount', { ...bind, flags: MS.BIND, data: null });
    await call(c, 'MountSetattr', {
      path: '/ro-dst',
      recursive: true,
      attrSet: MOUNT_ATTR.RDONLY | MOUNT_ATTR.NOSUID,
      attrClr: 0,
      root,
    });
    const write = c.call('WriteFile', {
      path: '/ro-dst/f',
      data: Buffer.from('x'),
      mode: 0o644,
      root,
    });
    expect((await rejection(write)).code).to.equal('EROFS');
    await call(c, 'WriteFile', { path: '/ro-src/f', data: Buffer.from('x'), mode: 0o644, root });
    expect(await call(c, 'Stat', { path: '/ro-dst/f', root })).to.include({ type: 'file' });
    await call(c, 'Umount', { target: path.join(root, 'ro-dst'), flags: 0 });
  });

  it('closes every fd it opened', () => {
    expect(server.openFds()).to.equal(baselineFds);
  });

  it('changes root with pivot_root into a prepared tmpfs', async () => {
    const newroot = path.join(base, 'newroot');
    await call(c, 'Mount', {
      source: 'tmpfs',
      target: newroot,
      fstype: 'tmpfs',
      flags: 0,
      data: null,
    });
    await call(c, 'MkdirAll', { path: '/inside', mode: 0o755, root: newroot });
    await call(c, 'Chroot', { root: newroot });
    expect(await call(c, 'Stat', { path: '/inside' })).to.include({ type: 'dir' });
    expect(await call(c, 'Stat', { path: base })).to.equal(null);
  });

  it('exits 0 when the client closes the connection', async () => {
    await c.close();
    expect(await server.exited()).to.deep.equal({ code: 0, signal: null });
  });

  it("leaves the host's mount table unchanged", () => {
    expect(mountinfo()).to.equal(hostMounts);
  });
});

describe('tsrun RPC methods, server in new mount and uts namespaces', function () {
  let server: ServerProcess;

  before(async function () {
    requireMachine(this);
    server = await startServer(CLONE.NEWNS | CLONE.NEWUTS);
  });

  it("sets the server's hostname and not the host's", async () => {
    const hostname = os.hostname();
    const c = server.client;
    await call(c, 'SetHostname', { name: 'tsrun-rpc-test' });
    const seen = await call(c, 'ReadFile', { path: '/proc/sys/kernel/hostname', maxSize: 100 });
    expect(Buffer.from(seen).toString()).to.equal('tsrun-rpc-test\n');
    expect(os.hostname()).to.equal(hostname);
    expect(await call(c, 'HasNamespace', { pid: process.pid, kind: 'uts' })).to.equal(true);
    expect(await call(c, 'HasNamespace', { pid: process.pid, kind: 'net' })).to.equal(false);
  });

  it('refuses a hostname over 64 bytes with EINVAL', async () => {
    const long = call(server.client, 'SetHostname', { name: 'x'.repeat(65) });
    expect((await rejection(long)).code).to.equal('EINVAL');
    await server.client.close();
    expect(await server.exited()).to.deep.equal({ code: 0, signal: null });
  });
});

describe('tsrun RPC server, malformed input', function () {
  before(function () {
    requireMachine(this);
  });

  it('answers a malformed frame with EPROTO, closes and exits 1', async () => {
    const server = await startServer(CLONE.NEWNS);
    const pending = server.client.call('Stat', { path: '/' });
    expect(await pending).to.include({ type: 'dir' });
    server.conn.write(Buffer.from([0, 0, 0, 3, 0xc4, 0x05, 0x00]));
    const after = server.client.call('Stat', { path: '/' });
    expect((await rejection(after)).code).to.equal('EPROTO');
    expect(await server.exited()).to.deep.equal({ code: 1, signal: null });
  });
});
