// Path resolution inside a container root, for the RPC server's file operations. A path is
// resolved with openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS) against an fd of the root, so
// '..' and absolute symlinks stop at the root, and the operation then acts on
// '/proc/self/fd/N[/name]': the kernel follows that magic link to what was resolved, and nothing
// on the way can lead out of the root. Every fd opened here is closed before returning.
import * as fs from 'node:fs';
import { posix } from 'node:path';
import { addon } from '../native/addon';
import { AT_FDCWD, O, RESOLVE } from '../native/constants';
import { systemError } from './errors';

const IN_ROOT = RESOLVE.IN_ROOT | RESOLVE.NO_MAGICLINKS;
const MAX_SYMLINKS = 40; // the kernel's own limit per lookup
const MAX_ROUNDS = 1024;

export type FileType = 'file' | 'dir' | 'symlink' | 'char' | 'block' | 'fifo' | 'socket';

export function procfd(fd: number): string {
  return `/proc/self/fd/${fd}`;
}

/** Runs fn(fd) and closes fd afterwards. */
export function withFd<T>(fd: number, fn: (fd: number) => T): T {
  try {
    return fn(fd);
  } finally {
    addon().close(fd);
  }
}

function isMissing(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

/**
 * Opens `path` resolved inside `root`, or on the host when root is undefined; returns the fd.
 * With root, path is taken relative to root whether or not it starts with '/'.
 */
export function openIn(root: string | undefined, path: string, flags: number, mode = 0): number {
  const native = addon();
  if (root === undefined) return native.openat2(AT_FDCWD, path, flags, mode, 0);
  const rootFd = native.openat2(AT_FDCWD, root, O.PATH | O.DIRECTORY, 0, 0);
  return withFd(rootFd, () => native.openat2(rootFd, path, flags, mode, IN_ROOT));
}

/** Replaces '/proc/self/fd/N' at the start of an error's paths with the path the caller named. */
export function relabel(err: unknown, fd: number, userPath: string): unknown {
  const prefix = procfd(fd);
  const fix = (value: unknown) => {
    if (typeof value !== 'string') return value;
    if (value !== prefix && !value.startsWith(`${prefix}/`)) return value;
    return posix.join(userPath, value.slice(prefix.length));
  };
  const e = err as { path?: unknown; dest?: unknown };
  if (e.path !== undefined) e.path = fix(e.path);
  if (e.dest !== undefined) e.dest = fix(e.dest);
  return err;
}

/**
 * Runs fn(dir, name) where dir names the parent directory of `path` resolved inside `root`
 * ('/proc/self/fd/N') and name is its last component, for calls that do not follow a final
 * symlink (mkdir, symlink, mknod, lstat). Without root, dir is the parent path itself.
 */
export function inParent<T>(
  root: string | undefined,
  path: string,
  syscall: string,
  fn: (dir: string, name: string) => T,
): T {
  const normal = posix.normalize(path);
  const name = posix.basename(normal);
  if (name === '') throw systemError('EEXIST', syscall, path);
  const parent = posix.dirname(normal);
  if (root === undefined) return fn(parent, name);
  return withFd(openIn(root, parent, O.PATH | O.DIRECTORY), (fd) => {
    try {
      return fn(procfd(fd), name);
    } catch (err) {
      throw relabel(err, fd, parent);
    }
  });
}

export function fileType(stats: fs.Stats): FileType {
  if (stats.isFile()) return 'file';
  if (stats.isDirectory()) return 'dir';
  if (stats.isSymbolicLink()) return 'symlink';
  if (stats.isCharacterDevice()) return 'char';
  if (stats.isBlockDevice()) return 'block';
  if (stats.isFIFO()) return 'fifo';
  return 'socket';
}

/** lstat of `path` inside root (the final symlink is not followed); null when it is missing. */
export function lstatIn(root: string | undefined, path: string): fs.Stats | null {
  let fd: number;
  try {
    fd = openIn(root, path, O.PATH | O.NOFOLLOW);
  } catch (err) {
    if (isMissing(err)) return null;
    throw err;
  }
  return withFd(fd, () => fs.fstatSync(fd));
}

export interface Walked {
  resolved: string; // in-root path of the deepest existing component, with no symlink in it
  missing: string[]; // the components below it still to walk, as written
  type: FileType; // type of `resolved`
}

function components(path: string): string[] {
  return path.split('/').filter((c) => c !== '' && c !== '.');
}

/**
 * Walks `path` inside `root` one component at a time, following symlinks (also dangling ones)
 * inside root, until a component is missing or is not a directory.
 */
export function walk(root: string, path: string): Walked {
  const queue = components(path);
  let resolved = '/';
  let type: FileType = 'dir';
  let links = 0;
  while (queue.length > 0 && type === 'dir') {
    const name = queue.shift() as string;
    if (name === '..') {
      resolved = posix.dirname(resolved);
      continue;
    }
    const next = posix.join(resolved, name);
    const stats = lstatIn(root, next);
    if (stats === null) return { resolved, missing: [name, ...queue], type };
    if (stats.isSymbolicLink()) {
      if (++links > MAX_SYMLINKS) throw systemError('ELOOP', 'openat2', path);
      const target = inParent(root, next, 'readlink', (dir, n) => fs.readlinkSync(`${dir}/${n}`));
      if (target.startsWith('/')) resolved = '/';
      queue.unshift(...components(target));
      continue;
    }
    resolved = next;
    type = fileType(stats);
  }
  return { resolved, missing: queue, type };
}

/**
 * mkdir -p inside root: creates each missing component of `path`, each resolved in root again
 * (so a symlink pointing out of root leads to a directory inside it). Returns the in-root paths
 * created, outermost first.
 */
export function mkdirAll(root: string, path: string, mode: number): string[] {
  const created: string[] = [];
  for (let round = 0; ; round++) {
    // Each round creates one directory; symlinks can add components, but not without bound.
    if (round > MAX_ROUNDS) throw systemError('ELOOP', 'mkdir', path);
    const { resolved, missing, type } = walk(root, path);
    if (type !== 'dir') throw systemError('ENOTDIR', 'mkdir', resolved);
    if (missing.length === 0) return created;
    const dir = posix.join(resolved, missing[0]);
    try {
      inParent(root, dir, 'mkdir', (parent, name) => fs.mkdirSync(`${parent}/${name}`, mode));
      created.push(dir);
    } catch (err) {
      // Created meanwhile by someone else: walk again.
      if ((err as { code?: unknown }).code !== 'EEXIST') throw err;
    }
  }
}
