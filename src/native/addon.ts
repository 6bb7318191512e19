// The whole JS surface of the native addon (addon/*.cc), declared once. Every function checks its
// arguments and throws a TypeError for bad ones; a failed system call throws a SystemError.
import * as path from 'node:path';

/** Thrown by every native call that fails: shaped like Node's own system errors. */
export interface SystemError extends Error {
  code: string; // errno name: 'EPERM', 'ENOENT', ...
  errno: number; // positive errno value
  syscall: string; // 'mount', 'pivot_root', 'clone', ...
  path?: string;
  dest?: string;
}

/** One file descriptor to place in a child at a fixed number. */
export interface FdPlacement {
  fd: number; // fd in the calling process
  target: number; // fd number in the child (0-2 replace the inherited stdio)
}

/** What one child process execs once it is set up. */
export interface ExecSpec {
  path: string; // absolute path of the program
  argv: string[];
  envp: string[]; // "NAME=value" strings; the child gets exactly these
  fds: FdPlacement[]; // placed with dup2; every other fd >= 3 is closed on exec
  ambientCaps?: number[]; // raised in the inheritable and ambient sets before execve
  pdeathSignal?: number; // prctl(PR_SET_PDEATHSIG) in the child, 0 or absent for none
  setsid?: boolean; // setsid() in the child before execve
  cwd?: string; // chdir in the child before execve
}

/** Options of cloneExec: one cloned process, optionally with an RPC-server sibling. */
export interface CloneSpec {
  flags: number; // CLONE_NEW* flags (0 for a plain child)
  joinNs: number[]; // namespace fds (opened by the caller) to setns into, in order, in the child
  // CLONE_NEW* flags unshared in the child after it joined joinNs (a mount namespace copied from
  // a container's, say, that later changes in the container do not move); 0 or absent for none
  unshare?: number;
  // Fork once more after joining: a process that joins a pid namespace is not in it, its children
  // are. The cloned process then only waits for that child, forwarding signals, and ends as it
  // did; it closes every fd but stdio. Its pid stays the one to wait for and signal.
  forkAfterJoin?: boolean;
  // Supplementary groups the child sets before it joins joinNs (root joining a user namespace
  // where setgroups is denied: the groups it enters with are the ones the payload keeps).
  groups?: number[];
  waitForRelease: boolean; // child blocks until release(); the caller writes id maps meanwhile
  main: ExecSpec; // what the cloned process execs
  // When present, the cloned process forks once more (after joining namespaces): the fork execs
  // this (the RPC server) and is a child of the main process, which reaps it.
  rpc?: ExecSpec;
}

/** Result of cloneExec; the child is stopped before execve until release() when asked. */
export interface CloneHandle {
  pid: number; // host pid of the cloned process
  pidfd: number; // pidfd of the cloned process (close-on-exec), for waitPidfd
  // Internal: the sync and status pipe ends; release() uses and closes them.
  syncFd: number;
  statusFd: number;
}

/** How a process ended. */
export interface ExitStatus {
  code: number | null; // exit code when it exited
  signal: number | null; // signal number when it was killed
}

/** One argument comparison of a seccomp rule (libseccomp's scmp_arg_cmp). */
export interface SeccompComparison {
  index: number; // argument number, 0-5
  op: string; // 'SCMP_CMP_EQ', 'SCMP_CMP_MASKED_EQ' (value is the mask, valueTwo the datum), ...
  value: bigint;
  valueTwo: bigint;
}

/** A seccomp filter as libseccomp builds it: names stage 1 has checked. */
export interface SeccompProgram {
  defaultAction: string; // 'SCMP_ACT_ALLOW', 'SCMP_ACT_ERRNO', ...
  defaultRet: number; // errno of ERRNO, message of TRACE; ignored by the other actions
  architectures: string[]; // libseccomp's names ('x86_64', 'x86'), besides the native one
  rules: { syscall: string; action: string; ret: number; args: SeccompComparison[] }[];
}

/** A compiled seccomp filter, as execve loads it. */
export interface SeccompFilter {
  filter: Buffer; // classic BPF instructions (struct sock_filter), 1 to 4096
  flags: number; // SECCOMP_FILTER_FLAG_LOG | SECCOMP_FILTER_FLAG_SPEC_ALLOW, or 0
}

/** Capability sets as 64-bit masks (bit N is capability N). */
export interface CapSets {
  effective: bigint;
  permitted: bigint;
  inheritable: bigint;
}

export interface Addon {
  // Processes ---------------------------------------------------------------------------------
  /**
   * clone(2) a child with `flags` (plus SIGCHLD and CLONE_PIDFD). All signals are blocked around
   * the clone; the child resets every handler to default and unblocks signals, sets its
   * parent-death signal, waits for release() when asked, joins `joinNs` in order, forks the RPC
   * server when `rpc` is given, places fds and execs. It runs only async-signal-safe code. A step
   * that fails is reported to release() through the status pipe as {step, errno}.
   */
  cloneExec(spec: CloneSpec): CloneHandle;
  /**
   * Let the child go on (write one byte on the sync pipe), then wait (off the event loop) until
   * every process of the clone has exec'd (status pipe EOF). Rejects with a SystemError whose
   * syscall is the failed step ('setns', 'fork', 'dup2', 'execve', 'chdir', 'prctl', ...), and
   * `path` the program that failed to exec (or the cwd for 'chdir'), if any child reported a
   * failure. A child killed before execve reports nothing: waitPidfd tells. Closes syncFd/statusFd
   * and sets them to -1 in the handle.
   */
  release(handle: CloneHandle): Promise<void>;
  /**
   * Abort a clone that has not been released: closes sync/status fds; a child waiting for release
   * exits 1. A no-op on a handle already released or aborted.
   */
  abort(handle: CloneHandle): void;
  /** Wait (on a worker thread) for the process behind a pidfd to exit and reap it. */
  waitPidfd(pidfd: number): Promise<ExitStatus>;
  /** Blocking waitpid(pid, 0) (-1: any child) on the calling thread; reaps it. */
  waitPid(pid: number): { pid: number } & ExitStatus;
  /**
   * execve(2) after resetting signal handlers/mask and clearing O_NONBLOCK on fds 0-2. A seccomp
   * filter, when given, is loaded on the calling thread right before the execve system call (the
   * thread needs no_new_privs or CAP_SYS_ADMIN); a failed load throws with syscall 'seccomp'.
   * With `programFd`, the program is that open file (execveat AT_EMPTY_PATH; `path` only names
   * it in errors): for a program opened before the root changed.
   */
  execve(
    path: string,
    argv: string[],
    envp: string[],
    seccomp?: SeccompFilter,
    programFd?: number,
  ): never;
  setsid(): number;
  getpgrp(): number;
  /** tcgetpgrp; returns -1 when fd is not a terminal. */
  tcgetpgrp(fd: number): number;
  /** tcsetpgrp with SIGTTOU ignored for the duration of the call. */
  tcsetpgrp(fd: number, pgrp: number): void;

  // Namespaces --------------------------------------------------------------------------------
  /** setns(2) on the calling thread; fd or path (opened O_RDONLY|O_CLOEXEC and closed). */
  setns(fdOrPath: number | string, nstype: number): void;
  /** unshare(2) on the calling thread. */
  unshare(flags: number): void;

  // Mounts ------------------------------------------------------------------------------------
  mount(
    source: string | null,
    target: string,
    fstype: string | null,
    flags: number,
    data: string | null,
  ): void;
  umount2(target: string, flags: number): void;
  /**
   * mount_setattr(2) on the mount at `path` (and every mount below it when `recursive`): sets the
   * MOUNT_ATTR_* bits of attrSet, clears those of attrClr, leaves the others as they are.
   */
  mountSetattr(path: string, recursive: boolean, attrSet: number, attrClr: number): void;
  pivotRoot(newRoot: string, putOld: string): void;
  chroot(path: string): void;
  sethostname(name: string): void;
  setdomainname(name: string): void;
  /**
   * openat2(dirfd, path, {flags: flags|O_CLOEXEC, mode, resolve}); dirfd -100 is AT_FDCWD.
   * Returns the new fd.
   */
  openat2(dirfd: number, path: string, flags: number, mode: number, resolve: number): number;
  /**
   * Attaches `size` bytes (0: to the end) of `file` from `offset` to a free loop device with
   * LOOP_CONFIGURE: autoclear, read-only unless asked, direct I/O when `directIO` and the kernel
   * can. Retries when another process takes the same free device first. Never uses a device
   * numbered `maxDevices` (default 256) or above: ENOSPC. With `shared`, a read-only attachment
   * reuses a device that already holds the same bytes of the same file read-only with autoclear
   * (`shared` in the result). Returns the device path and an open fd on it (close-on-exec); the
   * device detaches once that fd is closed and nothing mounts it.
   */
  loopAttach(
    file: string,
    offset: number,
    size: number,
    readonly: boolean,
    directIO: boolean,
    options?: { maxDevices?: number; shared?: boolean },
  ): { device: string; fd: number; shared: boolean };
  /** Sets IFF_UP on the network interface `name` of this thread's network namespace. */
  interfaceUp(name: string): void;
  /** mknod(2) (mode includes the file type bits), for minimal /dev nodes. */
  mknod(path: string, mode: number, major: number, minor: number): void;

  // Identity and privileges ------------------------------------------------------------------
  /** Raw syscalls on the calling thread only (not glibc's all-thread wrappers). */
  setresuid(r: number, e: number, s: number): void;
  setresgid(r: number, e: number, s: number): void;
  setgroups(gids: number[]): void;
  /** setfsuid/setfsgid on the calling thread; return the previous value. */
  setfsuid(uid: number): number;
  setfsgid(gid: number): number;
  capget(): CapSets;
  capset(sets: CapSets): void;
  /** prctl(PR_CAPBSET_READ). */
  capBoundingRead(cap: number): boolean;
  /** prctl(PR_CAPBSET_DROP). */
  capBoundingDrop(cap: number): void;
  /** prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE|LOWER|IS_SET|CLEAR_ALL). */
  capAmbientRaise(cap: number): void;
  capAmbientClearAll(): void;
  capAmbientIsSet(cap: number): boolean;
  /** Highest capability number this kernel knows (from /proc/sys/kernel/cap_last_cap). */
  capLast(): number;

  // Seccomp (libseccomp) -------------------------------------------------------------------------
  /** Whether libseccomp knows a system call of this name, on any architecture. */
  seccompSyscallKnown(name: string): boolean;
  /** Whether libseccomp knows an architecture of this name ('x86_64', 'aarch64', ...). */
  seccompArchKnown(name: string): boolean;
  /**
   * Compiles a filter with libseccomp, for the native architecture and `architectures`, into
   * classic BPF. Throws a SystemError naming the libseccomp call and the syscall or arch name.
   */
  seccompCompile(program: SeccompProgram): Buffer;
  setNoNewPrivs(): void;
  getNoNewPrivs(): boolean;
  setKeepCaps(on: boolean): void;
  setPdeathsig(signal: number): void;
  setChildSubreaper(on: boolean): void;
  /** prctl(PR_SET_NAME): the comm name `ps` shows (15 bytes kept). */
  setName(name: string): void;

  // File descriptors -------------------------------------------------------------------------
  /** socketpair(AF_UNIX, SOCK_STREAM|SOCK_CLOEXEC). */
  socketpair(): [number, number];
  /** pipe2(O_CLOEXEC): [read end, write end]. */
  pipe(): [number, number];
  /** sendmsg with SCM_RIGHTS: sends `data` (at least one byte) and the fds. */
  sendFds(sock: number, data: Buffer, fds: number[]): void;
  /** recvmsg with SCM_RIGHTS (blocking); fds received are close-on-exec. */
  recvFds(sock: number, maxData: number, maxFds: number): { data: Buffer; fds: number[] };
  /** flock(2) shared or exclusive, never waiting: throws EWOULDBLOCK when another holds it. */
  flock(fd: number, exclusive: boolean): void;
  /** fcntl F_SETFD FD_CLOEXEC on or off. */
  setCloexec(fd: number, on: boolean): void;
  close(fd: number): void;
}

const candidates = [
  path.join(__dirname, '..', '..', '..', 'build', 'Release', 'tsrun.node'),
  path.join(__dirname, '..', '..', '..', 'build', 'Debug', 'tsrun.node'),
];

function load(): Addon {
  for (const file of candidates) {
    try {
      return require(file) as Addon;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'MODULE_NOT_FOUND') throw err;
    }
  }
  throw new Error(`native addon not found (tried ${candidates.join(', ')}); run 'npm install'`);
}

/** The loaded addon. Loading is lazy so that modules can be imported without it. */
let loaded: Addon | undefined;
export function addon(): Addon {
  loaded ??= load();
  return loaded;
}
