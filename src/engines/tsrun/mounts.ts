// The tsrun engine's mount plan: which mount points the container needs and what is mounted on
// each, computed from the config alone (no system calls), so that it can be tested without root.
// Targets are paths inside the container; the master mounts them under the final root.
import * as path from 'node:path';
import { MS } from '../../native/constants';
import type { MountArgs } from './rpc-types';
import type { TsrunEngineConfig } from './config';

/** Layout of the session dir (a tmpfs in the container's mount namespace). */
export function sessionPaths(session: string) {
  return {
    root: session,
    rootfs: `${session}/rootfs`, // the image, read-only unless --writable
    layer: `${session}/layer`, // missing mount points, stacked over rootfs by overlayfs
    final: `${session}/final`, // the overlay of layer and rootfs: becomes '/'
    files: `${session}/files`, // generated files: passwd, group
    tmp: `${session}/tmp`, // /tmp and /var/tmp with --contain
    varTmp: `${session}/var_tmp`,
    home: `${session}/home`, // the home directory with --contain
  };
}
export type SessionPaths = ReturnType<typeof sessionPaths>;

/** One mount point in the container and the mounts made on it, in order. */
export interface MountPoint {
  dest: string;
  kind: 'dir' | 'file';
  /** What it is, for logs and errors: 'proc', 'home', 'bind', ... */
  what: string;
  mounts: MountArgs[];
  /** Skip when the destination is missing in the image instead of creating it. */
  optional?: boolean;
}

const BIND_FLAGS = MS.BIND | MS.REC | MS.NOSUID | MS.NODEV;
const RO_REMOUNT = MS.BIND | MS.REMOUNT | MS.RDONLY | MS.NOSUID | MS.NODEV;

/** A bind of a host path, remounted read-only when asked. */
export function bindMounts(source: string, dest: string, readonly: boolean): MountArgs[] {
  const mounts: MountArgs[] = [
    { source, target: dest, fstype: null, flags: BIND_FLAGS, data: null },
  ];
  if (readonly)
    mounts.push({ source: null, target: dest, fstype: null, flags: RO_REMOUNT, data: null });
  return mounts;
}

function pseudo(fstype: string, dest: string, flags: number, data: string | null): MountArgs {
  return { source: fstype, target: dest, fstype, flags, data };
}

const NOSUID_NODEV_NOEXEC = MS.NOSUID | MS.NODEV | MS.NOEXEC;

function systemMountPoints(cfg: TsrunEngineConfig, s: SessionPaths): MountPoint[] {
  const points: MountPoint[] = [
    {
      dest: '/proc',
      kind: 'dir',
      what: 'proc',
      mounts: [pseudo('proc', '/proc', NOSUID_NODEV_NOEXEC, null)],
    },
    {
      dest: '/sys',
      kind: 'dir',
      what: 'sysfs',
      mounts: [pseudo('sysfs', '/sys', NOSUID_NODEV_NOEXEC, null)],
    },
    {
      dest: '/dev',
      kind: 'dir',
      what: 'dev',
      mounts: cfg.contain
        ? [pseudo('tmpfs', '/dev', MS.NOSUID | MS.NOEXEC, 'mode=755,size=1m')]
        : [
            {
              source: '/dev',
              target: '/dev',
              fstype: null,
              flags: MS.BIND | MS.REC | MS.NOSUID,
              data: null,
            },
          ],
    },
  ];
  const tmp = cfg.contain ? s.tmp : '/tmp';
  const varTmp = cfg.contain ? s.varTmp : '/var/tmp';
  points.push({ dest: '/tmp', kind: 'dir', what: 'tmp', mounts: bindMounts(tmp, '/tmp', false) });
  points.push({
    dest: '/var/tmp',
    kind: 'dir',
    what: 'tmp',
    mounts: bindMounts(varTmp, '/var/tmp', false),
  });
  return points;
}

function isUnder(p: string, dir: string): boolean {
  return dir === '/' || p === dir || p.startsWith(dir.endsWith('/') ? dir : `${dir}/`);
}

function homeMountPoint(cfg: TsrunEngineConfig, s: SessionPaths): MountPoint | undefined {
  const home = cfg.user?.home;
  if (home === undefined || home === '/') return undefined;
  const source = cfg.contain ? s.home : home;
  return { dest: home, kind: 'dir', what: 'home', mounts: bindMounts(source, home, false) };
}

/**
 * The mount points of a container, in mount order: system mounts, home, identity files, user
 * binds. The working directory is decided later (it depends on what the image holds).
 */
export function planMountPoints(
  cfg: TsrunEngineConfig,
  s: SessionPaths,
  isDir: (hostPath: string) => boolean,
): MountPoint[] {
  const points = systemMountPoints(cfg, s);
  const home = homeMountPoint(cfg, s);
  if (home !== undefined) points.push(home);
  for (const name of ['passwd', 'group']) {
    points.push({
      dest: `/etc/${name}`,
      kind: 'file',
      what: name,
      mounts: bindMounts(`${s.files}/${name}`, `/etc/${name}`, true),
    });
  }
  for (const name of ['hosts', 'resolv.conf']) {
    points.push({
      dest: `/etc/${name}`,
      kind: 'file',
      what: name,
      optional: true,
      mounts: bindMounts(`/etc/${name}`, `/etc/${name}`, true),
    });
  }
  for (const bind of cfg.binds) {
    const kind = isDir(bind.source) ? 'dir' : 'file';
    points.push({
      dest: path.posix.normalize(bind.destination),
      kind,
      what: 'bind',
      mounts: bindMounts(bind.source, path.posix.normalize(bind.destination), bind.readonly),
    });
  }
  return points;
}

/**
 * The current directory is bound into the container unless --contain is set, it is '/', it is
 * already inside another mount point, or the image has a directory of that name.
 */
export function cwdMountPoint(
  cfg: TsrunEngineConfig,
  planned: MountPoint[],
  existsInImage: boolean,
): MountPoint | undefined {
  const cwd = cfg.cwd;
  if (cfg.contain || cwd === '/' || existsInImage) return undefined;
  const covering = planned.filter(
    (p) => p.kind === 'dir' && p.what !== 'proc' && p.what !== 'sysfs',
  );
  if (covering.some((p) => isUnder(cwd, p.dest))) return undefined;
  return { dest: cwd, kind: 'dir', what: 'cwd', mounts: bindMounts(cwd, cwd, false) };
}

/** The minimal /dev of --contain: device binds from the host, a private devpts, /dev/shm. */
export const CONTAINED_DEVICES = ['null', 'zero', 'full', 'random', 'urandom', 'tty'];

export const DEV_SYMLINKS: [string, string][] = [
  ['/proc/self/fd', '/dev/fd'],
  ['/proc/self/fd/0', '/dev/stdin'],
  ['/proc/self/fd/1', '/dev/stdout'],
  ['/proc/self/fd/2', '/dev/stderr'],
  ['pts/ptmx', '/dev/ptmx'],
];

export const DEVPTS_MOUNT: MountArgs = pseudo(
  'devpts',
  '/dev/pts',
  MS.NOSUID | MS.NOEXEC,
  'newinstance,ptmxmode=0666,mode=0620,gid=5',
);
export const SHM_MOUNT: MountArgs = pseudo('tmpfs', '/dev/shm', MS.NOSUID | MS.NODEV, 'mode=1777');

/** Escapes a path for overlayfs's lowerdir list (',' and ':' separate entries). */
export function overlayPath(p: string): string {
  return p.replace(/\\/g, '\\\\').replace(/:/g, '\\:').replace(/,/g, '\\,');
}
