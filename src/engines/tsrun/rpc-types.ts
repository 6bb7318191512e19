// The tsrun engine's RPC methods: names and argument/result shapes shared by the master (client)
// and the RPC server. Every path argument is absolute. When `root` is given, the path is resolved
// inside `root` as if `root` were `/`: symlinks are followed but never out of `root` (openat2 with
// RESOLVE_IN_ROOT), and the operation acts on what the path resolved to.

export const Method = {
  Mount: 'Mount',
  Umount: 'Umount',
  MountSetattr: 'MountSetattr',
  LoopDevice: 'LoopDevice',
  Mkdir: 'Mkdir',
  MkdirAll: 'MkdirAll',
  Chroot: 'Chroot',
  SetHostname: 'SetHostname',
  LoopbackUp: 'LoopbackUp',
  FuseMount: 'FuseMount',
  HasNamespace: 'HasNamespace',
  SetFsID: 'SetFsID',
  Symlink: 'Symlink',
  Touch: 'Touch',
  WriteFile: 'WriteFile',
  ReadFile: 'ReadFile',
  Stat: 'Stat',
  Resolve: 'Resolve',
  Mknod: 'Mknod',
} as const;
export type MethodName = (typeof Method)[keyof typeof Method];

export interface MountArgs {
  source: string | null; // null for pseudo filesystems with no source ('proc', 'tmpfs', ...)
  target: string;
  fstype: string | null;
  flags: number; // MS_* bits
  data: string | null;
  root?: string; // resolve target inside root
  sourceRoot?: string; // resolve source inside this root (a bind from inside the image)
}
/**
 * Sets the MOUNT_ATTR_* bits `attrSet` and clears `attrClr` on the mount at `path` (and every
 * mount below it when `recursive`), leaving its other attributes as they are (mount_setattr).
 */
export interface MountSetattrArgs {
  path: string;
  recursive: boolean;
  attrSet: number;
  attrClr: number;
  root?: string;
}
/**
 * Attaches `size` bytes (0: all) of the file at `path` from `offset` to a free loop device
 * (autoclear, direct I/O where possible); answers the device's path. The server holds the device
 * open until it exits, by when a mount holds it; the device then detaches with the last mount.
 * `maxDevices` and `shared` are the admin's `max loop devices` and `shared loop devices`: with
 * `shared`, a read-only attachment reuses a device that holds the same bytes read-only.
 */
export interface LoopDeviceArgs {
  path: string;
  offset: number;
  size: number;
  readonly: boolean;
  maxDevices?: number;
  shared?: boolean;
}
export interface LoopDeviceResult {
  device: string;
  /** Whether the device was already attached (shared with another container). */
  shared: boolean;
}
export interface FuseMountArgs {
  target: string;
  source: string;
  subtype: string;
  readonly: boolean;
  uid: number;
  gid: number;
}
export interface UmountArgs {
  target: string;
  flags: number;
}
export interface MkdirArgs {
  path: string;
  mode: number;
  root?: string;
}
/** Creates every missing component (like mkdir -p); returns the created paths, outermost first. */
export interface MkdirAllArgs {
  path: string;
  mode: number;
  root?: string;
}
/**
 * Makes `root` the root of the mount namespace: chdir(root), pivot_root(".", "."), detach the old
 * root (umount2 MNT_DETACH), chdir("/"). Every process of the namespace sees the new root.
 */
export interface ChrootArgs {
  root: string;
}
export interface SetHostnameArgs {
  name: string;
}
/**
 * Whether the RPC server (so the container) is in a different `kind` namespace than process `pid`
 * (as Singularity's HasNamespace). The master passes its own pid: the answer is then "does the
 * container have its own `kind` namespace". `pid` is looked up in the server's /proc, which is
 * the host's procfs until Chroot, so call it before Chroot. Compares the inodes of
 * /proc/<pid>/ns/<kind> and /proc/self/ns/<kind>; false when the kernel has no such namespace
 * kind. pid 1 is no reference: reading another user's /proc/1/ns fails without privileges.
 * kind: 'user' | 'mnt' | 'pid' | 'net' | 'uts' | 'ipc' | 'cgroup'; pid >= 1.
 */
export interface HasNamespaceArgs {
  pid: number;
  kind: string;
}
/** setfsuid/setfsgid of the RPC server's serving thread, for files created as the user. */
export interface SetFsIDArgs {
  uid: number;
  gid: number;
}
export interface SymlinkArgs {
  target: string;
  linkpath: string;
  root?: string;
}
/** Creates an empty regular file when the path does not exist (a mount point for a file bind). */
export interface TouchArgs {
  path: string;
  mode: number;
  root?: string;
}
export interface WriteFileArgs {
  path: string;
  data: Uint8Array;
  mode: number;
  root?: string;
}
export interface ReadFileArgs {
  path: string;
  maxSize: number;
  root?: string;
}
export interface StatArgs {
  path: string;
  root?: string;
}
export type FileType = 'file' | 'dir' | 'symlink' | 'char' | 'block' | 'fifo' | 'socket';
/** null when the path does not exist. Does not follow a final symlink. */
export type StatResult = {
  type: FileType;
  mode: number;
  uid: number;
  gid: number;
  size: number;
} | null;
/**
 * Resolves `path` inside `root` as far as it exists. `resolved` is the in-root path (starting
 * with '/') of the deepest existing component after following symlinks inside root; `missing` are
 * the components below it that do not exist; `type` is the type of `resolved`.
 */
export interface ResolveArgs {
  path: string;
  root: string;
}
export interface ResolveResult {
  resolved: string;
  missing: string[];
  type: FileType;
}
export interface MknodArgs {
  path: string;
  mode: number;
  major: number;
  minor: number;
  root?: string;
}

/**
 * Argument and result type of each method. Methods that only act answer null. MkdirAll answers
 * the in-root paths it created (after following symlinks inside root), outermost first.
 */
export interface MethodTypes {
  Mount: { args: MountArgs; result: null };
  Umount: { args: UmountArgs; result: null };
  MountSetattr: { args: MountSetattrArgs; result: null };
  LoopDevice: { args: LoopDeviceArgs; result: LoopDeviceResult };
  Mkdir: { args: MkdirArgs; result: null };
  MkdirAll: { args: MkdirAllArgs; result: string[] };
  Chroot: { args: ChrootArgs; result: null };
  SetHostname: { args: SetHostnameArgs; result: null };
  /**
   * Opens /dev/fuse, mounts a FUSE file system (read-only when asked) of type fuse.`subtype` on `target` with
   * it (user_id and group_id: the ids that own it, as the server sees them), and hands the
   * device fd to the master through the fd channel: the master runs the FUSE daemon on it.
   */
  FuseMount: { args: FuseMountArgs; result: null };
  /** Brings the loopback interface of the server's network namespace up. */
  LoopbackUp: { args: Record<string, never>; result: null };
  HasNamespace: { args: HasNamespaceArgs; result: boolean };
  SetFsID: { args: SetFsIDArgs; result: null };
  Symlink: { args: SymlinkArgs; result: null };
  Touch: { args: TouchArgs; result: null };
  WriteFile: { args: WriteFileArgs; result: null };
  ReadFile: { args: ReadFileArgs; result: Uint8Array };
  Stat: { args: StatArgs; result: StatResult };
  Resolve: { args: ResolveArgs; result: ResolveResult };
  Mknod: { args: MknodArgs; result: null };
}
