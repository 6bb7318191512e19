// The tsrun engine's RPC methods (contract: rpc-types.ts). Runs in the RPC server process: inside
// the container's namespaces, privileged, single-threaded for all file work (every call here is
// synchronous, so it runs on the thread whose fsuid SetFsID sets). Paths given with a `root` are
// resolved inside that root (../../rpc/in-root.ts).
import * as fs from 'node:fs';
import { Addon, addon } from '../../native/addon';
import { MNT_DETACH, mountFlagNames, MS, NAMESPACES, O } from '../../native/constants';
import { badArgument, RpcError, systemError } from '../../rpc/errors';
import {
  fileType,
  inParent,
  lstatIn,
  mkdirAll,
  openIn,
  procfd,
  relabel,
  walk,
  withFd,
} from '../../rpc/in-root';
import { registerMethods } from '../../rpc/registry';
import type { MethodSpec, MethodTable } from '../../rpc/server';
import { shape, Validator } from '../../rpc/validate';
import * as T from './rpc-types';

const HOST_NAME_MAX = 64;
const MAX_READ = 4 * 1024 * 1024; // ReadFile's maxSize limit: the answer must fit in a frame

type Table = {
  [M in keyof T.MethodTypes]: MethodSpec<T.MethodTypes[M]['args'], T.MethodTypes[M]['result']>;
};

// Mount -----------------------------------------------------------------------------------------

const mountShape: Validator<T.MountArgs> = shape<T.MountArgs>({
  source: 'string|null',
  target: 'path',
  fstype: 'string|null',
  flags: 'uint',
  data: 'string|null',
  root: 'path?',
  sourceRoot: 'path?',
});

function validateMount(args: unknown): asserts args is T.MountArgs {
  mountShape(args);
  if (args.sourceRoot !== undefined && !args.source?.startsWith('/')) {
    throw badArgument('source', 'an absolute path when sourceRoot is given');
  }
}

/** Opens `path` with O_PATH inside root when root is given; undefined otherwise. */
function openOptional(root: string | undefined, path: string | null): number | undefined {
  return root === undefined || path === null ? undefined : openIn(root, path, O.PATH);
}

/** A failed mount names the source, the mount point, the fstype, the MS_* flags and the data. */
function mountError(err: unknown, a: T.MountArgs): unknown {
  const { code, syscall } = err as { code?: unknown; syscall?: unknown };
  if (typeof code !== 'string' || syscall !== 'mount') return err;
  const what = [a.fstype ?? 'no fstype', mountFlagNames(a.flags), a.data ?? 'no data'];
  const source = a.source === null ? '' : ` '${a.source}' ->`;
  const message = `mount${source} '${a.target}' (${what.join(', ')}): ${code}`;
  return new RpcError(code, message, { op: 'mount', path: a.target });
}

function mount(a: T.MountArgs): null {
  const targetFd = openOptional(a.root, a.target);
  let sourceFd: number | undefined;
  try {
    sourceFd = openOptional(a.sourceRoot, a.source);
    const source = sourceFd === undefined ? a.source : procfd(sourceFd);
    const target = targetFd === undefined ? a.target : procfd(targetFd);
    addon().mount(source, target, a.fstype, a.flags, a.data);
    return null;
  } catch (err) {
    if (targetFd !== undefined) relabel(err, targetFd, a.target);
    if (sourceFd !== undefined) relabel(err, sourceFd, a.source as string);
    throw mountError(err, a);
  } finally {
    if (targetFd !== undefined) addon().close(targetFd);
    if (sourceFd !== undefined) addon().close(sourceFd);
  }
}

function mountSetattr(a: T.MountSetattrArgs): null {
  const fd = openOptional(a.root, a.path);
  try {
    addon().mountSetattr(fd === undefined ? a.path : procfd(fd), a.recursive, a.attrSet, a.attrClr);
    return null;
  } catch (err) {
    if (fd !== undefined) relabel(err, fd, a.path);
    throw err;
  } finally {
    if (fd !== undefined) addon().close(fd);
  }
}

/** Loop devices attached for this container: held open until the server exits. */
const loopFds: number[] = [];

function loopDevice(a: T.LoopDeviceArgs): T.LoopDeviceResult {
  const options = { maxDevices: a.maxDevices, shared: a.shared };
  let loop: ReturnType<Addon['loopAttach']>;
  try {
    loop = addon().loopAttach(a.path, a.offset, a.size, a.readonly, true, options);
  } catch (err) {
    const { code, syscall } = err as { code?: string; syscall?: string };
    if (code !== 'ENOSPC' || syscall !== 'LOOP_CTL_GET_FREE') throw err;
    const max = a.maxDevices ?? 256;
    const message = `no free loop device numbered below ${max} (max loop devices = ${max})`;
    throw new RpcError(code, message, { op: 'LoopDevice', path: a.path });
  }
  loopFds.push(loop.fd);
  return { device: loop.device, shared: loop.shared };
}

/** The fd channel to the master (fd 4), for open files handed over with SCM_RIGHTS. */
const FD_CHANNEL = Number(process.env.TSRUN_FD_CHANNEL ?? -1);

function fuseMount(a: T.FuseMountArgs): null {
  if (FD_CHANNEL < 0) throw new RpcError('EBADF', 'FuseMount: the server has no fd channel');
  const fd = fs.openSync('/dev/fuse', 'r+');
  try {
    const data = `fd=${fd},rootmode=40000,user_id=${a.uid},group_id=${a.gid},allow_other`;
    const flags = (a.readonly ? MS.RDONLY : 0) | MS.NOSUID | MS.NODEV;
    addon().mount(a.source, a.target, `fuse.${a.subtype}`, flags, data);
    addon().sendFds(FD_CHANNEL, Buffer.from('fuse'), [fd]);
    return null;
  } finally {
    fs.closeSync(fd);
  }
}

// Root and identity -----------------------------------------------------------------------------

function chroot({ root }: T.ChrootArgs): null {
  process.chdir(root);
  // Stack the new root on the old one, then detach the old one from under it.
  addon().pivotRoot('.', '.');
  addon().umount2('.', MNT_DETACH);
  process.chdir('/');
  return null;
}

const hostnameShape: Validator<T.SetHostnameArgs> = shape<T.SetHostnameArgs>({ name: 'string' });

function validateHostname(args: unknown): asserts args is T.SetHostnameArgs {
  hostnameShape(args);
  if (Buffer.byteLength(args.name) > HOST_NAME_MAX) {
    throw badArgument('name', `at most ${HOST_NAME_MAX} bytes`);
  }
}

const namespaceShape: Validator<T.HasNamespaceArgs> = shape<T.HasNamespaceArgs>({
  pid: 'uint',
  kind: 'name',
});

function validateNamespace(args: unknown): asserts args is T.HasNamespaceArgs {
  namespaceShape(args);
  if (args.pid < 1) throw badArgument('pid', 'a pid >= 1');
  if (!Object.hasOwn(NAMESPACES, args.kind)) {
    throw badArgument('kind', `one of ${Object.keys(NAMESPACES).join(', ')}`);
  }
}

/** "dev:ino" of a namespace file, or null when this kernel has no such namespace kind. */
function namespaceId(path: string): string | null {
  try {
    const stats = fs.statSync(path);
    return `${stats.dev}:${stats.ino}`;
  } catch (err) {
    if ((err as { code?: unknown }).code === 'ENOENT') return null;
    throw err;
  }
}

function hasNamespace({ pid, kind }: T.HasNamespaceArgs): boolean {
  const own = namespaceId(`/proc/self/ns/${kind}`);
  if (own === null) return false;
  const other = namespaceId(`/proc/${pid}/ns/${kind}`);
  if (other === null) throw systemError('ESRCH', 'stat', `/proc/${pid}/ns/${kind}`);
  return own !== other;
}

function setFsId({ uid, gid }: T.SetFsIDArgs): null {
  const native = addon();
  // Group first, while the fsuid may still be privileged. A second call returns the value now
  // in effect: the calls report no error themselves.
  native.setfsgid(gid);
  if (native.setfsgid(gid) !== gid) throw systemError('EPERM', 'setfsgid');
  native.setfsuid(uid);
  if (native.setfsuid(uid) !== uid) throw systemError('EPERM', 'setfsuid');
  return null;
}

// Files -----------------------------------------------------------------------------------------

function touch({ path, mode, root }: T.TouchArgs): null {
  try {
    addon().close(openIn(root, path, O.PATH));
    return null;
  } catch (err) {
    // Missing, or a dangling symlink: create what it names, inside root.
    if ((err as { code?: unknown }).code !== 'ENOENT') throw err;
  }
  addon().close(openIn(root, path, O.WRONLY | O.CREAT | O.NOCTTY | O.NONBLOCK, mode));
  return null;
}

function writeFile({ path, data, mode, root }: T.WriteFileArgs): null {
  const flags = O.WRONLY | O.CREAT | O.TRUNC | O.NOCTTY | O.NONBLOCK;
  withFd(openIn(root, path, flags, mode), (fd) => {
    for (let done = 0; done < data.length;) {
      done += fs.writeSync(fd, data, done, data.length - done);
    }
  });
  return null;
}

const readShape: Validator<T.ReadFileArgs> = shape<T.ReadFileArgs>({
  path: 'path',
  maxSize: 'uint',
  root: 'path?',
});

function validateRead(args: unknown): asserts args is T.ReadFileArgs {
  readShape(args);
  if (args.maxSize > MAX_READ) throw badArgument('maxSize', `at most ${MAX_READ}`);
}

function readFile({ path, maxSize, root }: T.ReadFileArgs): Uint8Array {
  return withFd(openIn(root, path, O.RDONLY | O.NOCTTY | O.NONBLOCK), (fd) => {
    if (!fs.fstatSync(fd).isFile()) throw systemError('EINVAL', 'read', path);
    // Sizes in /proc are 0: read until EOF, one byte more than allowed to detect overflow.
    const buffer = Buffer.allocUnsafe(maxSize + 1);
    let size = 0;
    for (let n = -1; n !== 0 && size < buffer.length; size += n) {
      n = fs.readSync(fd, buffer, size, buffer.length - size, null);
    }
    if (size > maxSize) throw systemError('EFBIG', 'read', path);
    return buffer.subarray(0, size);
  });
}

function stat({ path, root }: T.StatArgs): T.StatResult {
  const stats = lstatIn(root, path);
  if (stats === null) return null;
  const { mode, uid, gid, size } = stats;
  return { type: fileType(stats), mode: mode & 0o7777, uid, gid, size };
}

function mkdir({ path, mode, root }: T.MkdirArgs): null {
  inParent(root, path, 'mkdir', (dir, name) => fs.mkdirSync(`${dir}/${name}`, mode));
  return null;
}

function symlink({ target, linkpath, root }: T.SymlinkArgs): null {
  inParent(root, linkpath, 'symlink', (dir, name) => fs.symlinkSync(target, `${dir}/${name}`));
  return null;
}

function mknod({ path, mode, major, minor, root }: T.MknodArgs): null {
  inParent(root, path, 'mknod', (dir, name) => {
    addon().mknod(`${dir}/${name}`, mode, major, minor);
  });
  return null;
}

// The table -------------------------------------------------------------------------------------

const pathArgs = { path: 'path', mode: 'uint', root: 'path?' } as const;

export const tsrunMethods: Table = {
  Mount: { validate: validateMount, handler: mount },
  Umount: {
    validate: shape<T.UmountArgs>({ target: 'path', flags: 'uint' }),
    handler: ({ target, flags }) => (addon().umount2(target, flags), null),
  },
  MountSetattr: {
    validate: shape<T.MountSetattrArgs>({
      path: 'path',
      recursive: 'bool',
      attrSet: 'uint',
      attrClr: 'uint',
      root: 'path?',
    }),
    handler: mountSetattr,
  },
  LoopDevice: {
    validate: shape<T.LoopDeviceArgs>({
      path: 'path',
      offset: 'offset',
      size: 'offset',
      readonly: 'bool',
      maxDevices: 'uint?',
      shared: 'bool?',
    }),
    handler: loopDevice,
  },
  Mkdir: { validate: shape<T.MkdirArgs>(pathArgs), handler: mkdir },
  MkdirAll: {
    validate: shape<T.MkdirAllArgs>(pathArgs),
    handler: ({ path, mode, root }) => mkdirAll(root ?? '/', path, mode),
  },
  Chroot: { validate: shape<T.ChrootArgs>({ root: 'path' }), handler: chroot },
  FuseMount: {
    validate: shape<T.FuseMountArgs>({
      target: 'path',
      source: 'name',
      subtype: 'name',
      readonly: 'bool',
      uid: 'uint',
      gid: 'uint',
    }),
    handler: fuseMount,
  },
  LoopbackUp: {
    validate: shape<Record<string, never>>({}),
    handler: () => (addon().interfaceUp('lo'), null),
  },
  SetHostname: {
    validate: validateHostname,
    handler: ({ name }) => (addon().sethostname(name), null),
  },
  HasNamespace: { validate: validateNamespace, handler: hasNamespace },
  SetFsID: { validate: shape<T.SetFsIDArgs>({ uid: 'uint', gid: 'uint' }), handler: setFsId },
  Symlink: {
    validate: shape<T.SymlinkArgs>({ target: 'name', linkpath: 'path', root: 'path?' }),
    handler: symlink,
  },
  Touch: { validate: shape<T.TouchArgs>(pathArgs), handler: touch },
  WriteFile: {
    validate: shape<T.WriteFileArgs>({ ...pathArgs, data: 'bytes' }),
    handler: writeFile,
  },
  ReadFile: { validate: validateRead, handler: readFile },
  Stat: { validate: shape<T.StatArgs>({ path: 'path', root: 'path?' }), handler: stat },
  Resolve: {
    validate: shape<T.ResolveArgs>({ path: 'path', root: 'path' }),
    handler: ({ path, root }) => walk(root, path),
  },
  Mknod: {
    validate: shape<T.MknodArgs>({ ...pathArgs, major: 'uint', minor: 'uint' }),
    handler: mknod,
  },
};

/** Registers the table under engine name 'tsrun' (done when this module loads). */
export function registerTsrunRpc(): void {
  registerMethods('tsrun', tsrunMethods as MethodTable);
}

registerTsrunRpc();
