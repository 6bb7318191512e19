// The tsrun engine's mount plan: which mount points the container needs and what is mounted on
// each, computed from the config alone (no system calls), so that it can be tested without root.
// Targets are paths inside the container; the master mounts them under the final root.
import * as path from 'node:path';
import { MOUNT_ATTR, MS } from '../../native/constants';
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
    overlays: `${session}/overlays`, // mount points of --overlay image files
    writable: `${session}/writable`, // the tmpfs of --writable-tmpfs
    scratch: `${session}/scratch`, // --scratch directories without --workdir
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
  /**
   * MOUNT_ATTR_* bits set on the mount point's mounts, recursively, once mounted. The kernel
   * ignores MS_NOSUID, MS_NODEV and MS_RDONLY on a new bind; mount_setattr adds them and keeps
   * what the source mount had (a bind remount would replace it).
   */
  attrs?: number;
  /** Skip when the destination is missing in the image instead of creating it. */
  optional?: boolean;
}

/** A recursive bind of a host path: nosuid, nodev, and read-only when asked. */
export function bindPoint(
  what: string,
  source: string,
  dest: string,
  opts: { kind?: 'dir' | 'file'; readonly?: boolean; optional?: boolean } = {},
): MountPoint {
  const flags = MS.BIND | MS.REC;
  const ro = opts.readonly === true ? MOUNT_ATTR.RDONLY : 0;
  return {
    dest,
    kind: opts.kind ?? 'dir',
    what,
    mounts: [{ source, target: dest, fstype: null, flags, data: null }],
    attrs: MOUNT_ATTR.NOSUID | MOUNT_ATTR.NODEV | ro,
    optional: opts.optional,
  };
}

function pseudo(fstype: string, dest: string, flags: number, data: string | null): MountArgs {
  return { source: fstype, target: dest, fstype, flags, data };
}

const NOSUID_NODEV_NOEXEC = MS.NOSUID | MS.NODEV | MS.NOEXEC;
const NOSUID_NODEV_NOEXEC_ATTRS = MOUNT_ATTR.NOSUID | MOUNT_ATTR.NODEV | MOUNT_ATTR.NOEXEC;

/** Whether /dev is the minimal one: with --contain, or when the admin says `mount dev = minimal`. */
export function minimalDev(cfg: TsrunEngineConfig): boolean {
  const dev = cfg.admin?.mountDev ?? 'yes';
  return dev === 'minimal' || (dev === 'yes' && cfg.contain);
}

/** The directory name of the index-th --scratch directory, where its files live on the host. */
export function scratchName(dest: string, index: number): string {
  return `${index}-${path.posix.basename(dest) || 'root'}`;
}

/** Where /tmp, /var/tmp, home and scratch come from in a contained run. */
export function containedSources(cfg: TsrunEngineConfig, s: SessionPaths) {
  const w = cfg.workdir;
  return {
    tmp: w === undefined ? s.tmp : `${w}/tmp`,
    varTmp: w === undefined ? s.varTmp : `${w}/var_tmp`,
    home: w === undefined ? s.home : `${w}/home`,
    scratch: (dest: string, index: number) =>
      `${w === undefined ? s.scratch : `${w}/scratch`}/${scratchName(dest, index)}`,
  };
}

function systemMountPoints(cfg: TsrunEngineConfig, s: SessionPaths): MountPoint[] {
  const admin = cfg.admin;
  const points: MountPoint[] = [];
  // In a user namespace the kernel mounts proc only for a pid namespace it owns, and sysfs only
  // for a network namespace it owns: otherwise the host's are bound.
  const userns = cfg.userns === true;
  if (admin?.mountProc ?? true) {
    if (userns && !cfg.pidNamespace) {
      points.push({ ...bindPoint('proc', '/proc', '/proc'), attrs: NOSUID_NODEV_NOEXEC_ATTRS });
    } else {
      const mounts = [pseudo('proc', '/proc', NOSUID_NODEV_NOEXEC, null)];
      points.push({ dest: '/proc', kind: 'dir', what: 'proc', mounts });
    }
  }
  if (admin?.mountSys ?? true) {
    if (userns && cfg.netNamespace !== true) {
      points.push({ ...bindPoint('sysfs', '/sys', '/sys'), attrs: NOSUID_NODEV_NOEXEC_ATTRS });
    } else {
      const mounts = [pseudo('sysfs', '/sys', NOSUID_NODEV_NOEXEC, null)];
      points.push({ dest: '/sys', kind: 'dir', what: 'sysfs', mounts });
    }
  }
  if ((admin?.mountDev ?? 'yes') !== 'no') {
    const minimal = minimalDev(cfg);
    points.push({
      dest: '/dev',
      kind: 'dir',
      what: 'dev',
      mounts: minimal
        ? [pseudo('tmpfs', '/dev', MS.NOSUID | MS.NOEXEC, 'mode=755,size=1m')]
        : [{ source: '/dev', target: '/dev', fstype: null, flags: MS.BIND | MS.REC, data: null }],
      attrs: minimal ? undefined : MOUNT_ATTR.NOSUID,
    });
  }
  if (admin?.mountTmp ?? true) {
    const sources = containedSources(cfg, s);
    const tmp = cfg.contain ? sources.tmp : '/tmp';
    const varTmp = cfg.contain ? sources.varTmp : '/var/tmp';
    points.push(bindPoint('tmp', tmp, '/tmp'), bindPoint('tmp', varTmp, '/var/tmp'));
  }
  return points;
}

function isUnder(p: string, dir: string): boolean {
  return dir === '/' || p === dir || p.startsWith(dir.endsWith('/') ? dir : `${dir}/`);
}

function homeMountPoint(cfg: TsrunEngineConfig, s: SessionPaths): MountPoint | undefined {
  if (cfg.homeBind !== undefined) {
    return bindPoint('home', cfg.homeBind.source, cfg.homeBind.destination);
  }
  const home = cfg.user?.home;
  if (home === undefined || home === '/' || cfg.noHome === true) return undefined;
  if (!(cfg.admin?.mountHome ?? true)) return undefined;
  const source = cfg.contain ? containedSources(cfg, s).home : home;
  return bindPoint('home', source, home);
}

/**
 * The mount points of a container, in mount order: system mounts, home, identity files, the
 * admin's binds, scratch directories, user binds. The working directory is decided later (it
 * depends on what the image holds).
 */
export function planMountPoints(
  cfg: TsrunEngineConfig,
  s: SessionPaths,
  isDir: (hostPath: string) => boolean,
): MountPoint[] {
  const admin = cfg.admin;
  const points = systemMountPoints(cfg, s);
  const home = homeMountPoint(cfg, s);
  if (home !== undefined) points.push(home);
  const file = { kind: 'file', readonly: true } as const;
  if (admin?.configPasswd ?? true)
    points.push(bindPoint('passwd', `${s.files}/passwd`, '/etc/passwd', file));
  if (admin?.configGroup ?? true)
    points.push(bindPoint('group', `${s.files}/group`, '/etc/group', file));
  if (admin?.configResolvConf ?? true) {
    const source = cfg.dns !== undefined ? `${s.files}/resolv.conf` : '/etc/resolv.conf';
    points.push(bindPoint('resolv.conf', source, '/etc/resolv.conf', { ...file, optional: true }));
  }
  for (const bind of admin?.binds ?? []) {
    const kind = isDir(bind.source) ? 'dir' : 'file';
    const dest = path.posix.normalize(bind.destination);
    points.push(bindPoint('bind path', bind.source, dest, { kind, readonly: bind.readonly }));
  }
  const sources = containedSources(cfg, s);
  (cfg.scratch ?? []).forEach((dest, index) => {
    points.push(bindPoint('scratch', sources.scratch(dest, index), path.posix.normalize(dest)));
  });
  for (const bind of cfg.binds) {
    const kind = isDir(bind.source) ? 'dir' : 'file';
    const dest = path.posix.normalize(bind.destination);
    points.push(bindPoint('bind', bind.source, dest, { kind, readonly: bind.readonly }));
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
  return bindPoint('cwd', cwd, cwd);
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
