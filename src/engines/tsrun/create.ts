// createContainer of the tsrun engine. Runs in the master, on the host; every privileged step is
// an RPC call served by the RPC server inside the container's mount namespace, as root. Order:
// session tmpfs, image on rootfs, missing mount points in a layer, read-only overlay of layer and
// rootfs as the final root, system mounts, home, identity files, binds, cwd, hostname, pivot.
//
// The calls go in three pipelined batches, each a chain: the server runs a call only if the one
// before it succeeded, so a failed mount never lets a later mkdir land on the host. Between the
// batches the master decides what the answers imply (which mount points the image lacks, what
// /etc/passwd holds).
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { TsrunError, wrap } from '../../common/errors';
import { addon, CloneHandle } from '../../native/addon';
import { lookPath } from './actions';
import { CONTAINER_PATH } from './environment';
import type { Logger } from '../../common/log';
import { CLONE, MS, mountAttrNames, mountFlagNames, SIGNALS } from '../../native/constants';
import type { RpcClient } from '../../rpc/client';
import type { ImageSource } from '../../images/detect';
import type { AdminSettings, OverlaySpec, TsrunEngineConfig, UserInfo } from './config';
import { makeGroup, makePasswd, makeResolvConf } from './identity';
import {
  CONTAINED_DEVICES,
  cwdMountPoint,
  DEV_SYMLINKS,
  DEVPTS_MOUNT,
  MountPoint,
  overlayPath,
  containedSources,
  minimalDev,
  planMountPoints,
  SessionPaths,
  sessionPaths,
  SHM_MOUNT,
} from './mounts';
import { Method, MethodTypes, MountArgs, ResolveResult, StatResult } from './rpc-types';

/** The overlay layers besides the image and the layer of missing mount points. */
interface Layers {
  lowers: string[];
  upper?: { upper: string; work: string };
}

type Call = <M extends keyof MethodTypes>(
  context: string,
  method: M,
  args: MethodTypes[M]['args'],
) => Promise<MethodTypes[M]['result']>;

/** A batch of chained calls: each runs only if the one before it succeeded. */
class Batch {
  private sent: Promise<unknown>[] = [];

  constructor(private readonly rpc: RpcClient) {}

  readonly call: Call = <M extends keyof MethodTypes>(
    context: string,
    method: M,
    args: MethodTypes[M]['args'],
  ) => {
    const answer = this.rpc
      .call<MethodTypes[M]['result']>(method, args, { chain: true })
      .catch((err: unknown) => Promise.reject(wrap(err, context)));
    // Failures are reported by done(), in order; no caller has to await every call.
    answer.catch(() => undefined);
    this.sent.push(answer);
    return answer;
  };

  /**
   * Sends one call outside the chain once every call before it is done, and waits for it: its
   * failure cancels nothing (a probe, or a step with its own fallback).
   */
  async now<M extends keyof MethodTypes>(
    method: M,
    args: MethodTypes[M]['args'],
  ): Promise<MethodTypes[M]['result']> {
    await this.done();
    return this.rpc.call<MethodTypes[M]['result']>(method, args, { chain: false });
  }

  /** Waits for every call sent; throws the first failure (answers come in order). */
  async done(): Promise<void> {
    const sent = this.sent;
    this.sent = [];
    await Promise.all(sent);
  }
}

/** A FUSE daemon the master started for the container; killed when the container is gone. */
export interface FuseDaemon {
  pid: number;
  pidfd: number;
}

/** Where a FUSE daemon runs: namespaces to join (fds, user first), then to unshare. */
interface DaemonPlace {
  joinNs: number[];
  unshare: number;
}

/**
 * A FUSE daemon (squashfuse, fuse-overlayfs) on a device already mounted in the container (libfuse
 * takes /dev/fd/N as that device), killed if the master dies; what it prints becomes log records.
 * Resolves once it has exec'd: by then it is in the namespaces of `place`.
 */
async function startFuseDaemon(
  tool: string,
  args: string[],
  fuseFd: number,
  log: Logger,
  place: DaemonPlace = { joinNs: [], unshare: 0 },
): Promise<FuseDaemon> {
  const file = lookPath(tool, process.env.PATH ?? CONTAINER_PATH);
  const [outRead, outWrite] = addon().pipe();
  let handle: CloneHandle;
  try {
    handle = addon().cloneExec({
      flags: 0,
      ...place,
      waitForRelease: true,
      main: {
        path: file,
        argv: [tool, ...args],
        envp: [],
        fds: [
          { fd: outWrite, target: 1 },
          { fd: outWrite, target: 2 },
          { fd: fuseFd, target: 3 },
        ],
        pdeathSignal: SIGNALS.SIGKILL,
      },
    });
  } finally {
    addon().close(outWrite);
  }
  logOutput(tool, outRead, log);
  try {
    await addon().release(handle);
  } catch (err) {
    await addon()
      .waitPidfd(handle.pidfd)
      .catch(() => undefined);
    addon().close(handle.pidfd);
    throw err;
  }
  return { pid: handle.pid, pidfd: handle.pidfd };
}

/** Logs each line a FUSE daemon prints: a warning, or debug for what is known to be noise. */
function logOutput(tool: string, fd: number, log: Logger): void {
  const pipe = new net.Socket({ fd, readable: true, writable: false });
  pipe.unref();
  readline.createInterface({ input: pipe }).on('line', (line) => {
    // fuse-overlayfs names each mount option it passes over (lazytime, from libfuse).
    const noise = /^unknown argument ignored: /.test(line);
    log[noise ? 'debug' : 'warn']({ tool, line }, 'FUSE daemon says');
  });
}

class Builder {
  readonly s: SessionPaths;
  /** FUSE daemons serving the container's images (the engine's list: it kills them). */
  fuse: FuseDaemon[] = [];
  fdChannel?: number;
  /** The container process's host pid: its /proc/PID/root shows the container's mounts. */
  containerPid = 0;
  /** What stage 1 read of tsrun.conf. */
  readonly admin: AdminSettings;
  readonly batch: Batch;

  constructor(
    readonly cfg: TsrunEngineConfig,
    rpc: RpcClient,
    readonly log: Logger,
  ) {
    this.s = sessionPaths(cfg.sessionDir!);
    if (cfg.admin === undefined) throw new Error('engine config: stage 1 set no admin settings');
    this.admin = cfg.admin;
    this.batch = new Batch(rpc);
  }

  get call(): Call {
    return this.batch.call;
  }

  done(): Promise<void> {
    return this.batch.done();
  }

  mount(context: string, m: MountArgs, root?: string): void {
    const { source, target, fstype, data } = m;
    const flags = mountFlagNames(m.flags);
    this.log.verbose({ source, target, root, fstype, flags, data }, 'mount');
    void this.call(context, Method.Mount, root === undefined ? m : { ...m, root });
  }

  mkdir(context: string, dir: string, mode = 0o755, root?: string): void {
    void this.call(context, Method.MkdirAll, { path: dir, mode, root });
  }

  /**
   * Session tmpfs and its folders. The mount point is one fixed, empty host directory that every
   * container shares (each mounts its own tmpfs there, in its own namespace); mounts made below
   * '/' stay in the container's namespace (rslave).
   */
  session(): void {
    try {
      fs.mkdirSync(this.s.root, { recursive: true, mode: 0o755 });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new TsrunError(
        `session dir '${this.s.root}' is missing and cannot be made (${code}): run scripts/setup.sh as root`,
        'ENOENT',
      );
    }
    const context = 'creating the session dir';
    const flags = MS.NOSUID | MS.NODEV;
    const data = `mode=755,size=${this.admin.sessiondirMaxSize}m`;
    this.mount(context, {
      source: null,
      target: '/',
      fstype: null,
      flags: MS.REC | (this.admin.mountSlave ? MS.SLAVE : MS.PRIVATE),
      data: null,
    });
    const fstype = this.admin.memoryFsType;
    this.mount(context, { source: fstype, target: this.s.root, fstype, flags, data });
    for (const dir of [this.s.rootfs, this.s.layer, this.s.final, this.s.files]) {
      this.mkdir(context, dir);
    }
    if (this.cfg.contain && this.cfg.workdir === undefined) {
      this.mkdir(context, this.s.tmp, 0o1777);
      this.mkdir(context, this.s.varTmp, 0o1777);
      this.mkdir(context, this.s.home, 0o755);
    }
    if (this.cfg.workdir === undefined) {
      const sources = containedSources(this.cfg, this.s);
      (this.cfg.scratch ?? []).forEach((dest, i) => this.mkdir(context, sources.scratch(dest, i)));
    }
  }

  /**
   * The image on rootfs: a bind of a sandbox directory, or the file system of an image file on a
   * loop device (which takes one round trip: the mount needs the device's name). Read-only
   * unless --writable.
   */
  async image(): Promise<void> {
    const context = `mounting image '${this.cfg.image}'`;
    const source = this.cfg.source!;
    const readonly = !this.cfg.writable;
    const target = this.s.rootfs;
    if (source.format === 'sandbox') {
      const flags = MS.BIND | MS.NODEV;
      this.mount(context, { source: this.cfg.image, target, fstype: null, flags, data: null });
      if (!readonly) return;
      const ro = flags | MS.REMOUNT | MS.RDONLY;
      return this.mount(context, { source: null, target, fstype: null, flags: ro, data: null });
    }
    if (this.cfg.userns === true && source.fstype === 'squashfs') {
      return this.fuseMount(context, source, target);
    }
    await this.loopMount(context, source, target, readonly);
  }

  /**
   * In a user namespace the kernel does not mount squashfs: the RPC server mounts a FUSE file
   * system there and hands the device over; squashfuse, run by the master on the host as the
   * user, serves it (and dies with the master: parent-death signal). One round trip.
   */
  async fuseMount(context: string, source: ImageSource, target: string): Promise<void> {
    const ids = { uid: this.cfg.user!.uid, gid: this.cfg.user!.gid };
    const args = { target, source: source.path, subtype: 'squashfuse', readonly: true, ...ids };
    const mounted = this.call(context, Method.FuseMount, args);
    await this.done();
    await mounted;
    const fuseFd = this.receiveFd(context);
    try {
      const argv = ['-f', '-o', `offset=${source.offset}`, source.path, '/dev/fd/3'];
      this.fuse.push(await startFuseDaemon('squashfuse', argv, fuseFd, this.log));
    } finally {
      addon().close(fuseFd);
    }
    this.log.verbose({ image: source.path, offset: source.offset }, 'squashfuse started');
  }

  /**
   * Mounts an image file's file system (at its offset) on `target` through a loop device: one
   * round trip, since the mount needs the device's name.
   */
  async loopMount(
    context: string,
    source: ImageSource,
    target: string,
    readonly: boolean,
  ): Promise<void> {
    const { path: file, offset, size } = source;
    const { maxLoopDevices: maxDevices, sharedLoopDevices: shared } = this.admin;
    const args = { path: file, offset, size, readonly, maxDevices, shared };
    const loop = this.call(context, Method.LoopDevice, args);
    await this.done();
    const { device, shared: reused } = await loop;
    this.log.verbose({ device, file, offset, size, shared: reused }, 'loop device attached');
    const flags = MS.NODEV | (readonly ? MS.RDONLY : 0);
    this.mount(context, { source: device, target, fstype: source.fstype!, flags, data: null });
  }

  resolve(dest: string): Promise<ResolveResult> {
    const args = { root: this.s.rootfs, path: dest };
    return this.call(`looking up '${dest}' in the image`, Method.Resolve, args);
  }

  stat(file: string): Promise<StatResult> {
    return this.call(`looking up '${file}' in the image`, Method.Stat, {
      path: file,
      root: this.s.rootfs,
    });
  }

  /** The image's file as text ('' when the image lacks it). */
  readImageFile(file: string, st: StatResult): Promise<string> {
    if (st === null) return Promise.resolve('');
    const args = { path: file, root: this.s.rootfs, maxSize: 4 << 20 };
    const data = this.call(`reading '${file}' of the image`, Method.ReadFile, args);
    return data.then((bytes) => Buffer.from(bytes).toString('utf8'));
  }

  /** /etc/passwd and /etc/group with the user in them, written to the session dir. */
  identityFiles(user: UserInfo, passwd: string, group: string): void {
    const context = 'writing /etc/passwd, /etc/group and /etc/resolv.conf';
    const files: Record<string, string> = {};
    if (this.admin.configPasswd) files.passwd = makePasswd(passwd, user);
    if (this.admin.configGroup) files.group = makeGroup(group, user);
    if (this.cfg.dns !== undefined) files['resolv.conf'] = makeResolvConf(this.cfg.dns);
    for (const [name, text] of Object.entries(files)) {
      const args = { path: `${this.s.files}/${name}`, data: Buffer.from(text), mode: 0o644 };
      void this.call(context, Method.WriteFile, args);
    }
  }

  /**
   * Creates in the layer each mount point the image lacks; returns the points to mount (optional
   * points the image lacks are dropped) and whether the layer holds anything.
   */
  layer(points: MountPoint[], found: ResolveResult[]): { points: MountPoint[]; used: boolean } {
    const kept: MountPoint[] = [];
    let used = false;
    points.forEach((point, i) => {
      const r = found[i];
      if (r.missing.length > 0 && point.optional) return;
      if (r.missing.length > 0 && this.cfg.writable) {
        this.log.warn({ dest: point.dest }, 'mount point missing in a writable image: skipped');
        return;
      }
      if (r.missing.length > 0 && this.admin.enableOverlay === 'no') {
        this.log.warn({ dest: point.dest }, "mount point missing, 'enable overlay = no': skipped");
        return;
      }
      if (r.missing.length > 0) {
        this.addToLayer(point, path.posix.join(r.resolved, ...r.missing));
        used = true;
      }
      kept.push(point);
    });
    return { points: kept, used };
  }

  addToLayer(point: MountPoint, inRoot: string): void {
    const target = `${this.s.layer}${inRoot}`;
    const context = `creating mount point '${point.dest}'`;
    this.log.debug({ dest: point.dest, layer: target }, 'mount point created in layer');
    if (point.kind === 'dir') return this.mkdir(context, target);
    this.mkdir(context, path.posix.dirname(target));
    void this.call(context, Method.Touch, { path: target, mode: 0o644 });
  }

  /** Where an --overlay's layers are: its directory, or its image file's loop mount. */
  async overlayDir(overlay: OverlaySpec, index: number, context: string): Promise<string> {
    const source = overlay.source!;
    if (source.format === 'sandbox') return overlay.path;
    const readonly = overlay.readonly || source.fstype === 'squashfs';
    const target = `${this.s.overlays}/${index}`;
    this.mkdir(context, target);
    await this.loopMount(context, source, target, readonly);
    return target;
  }

  /** A read-only overlay's layer: its upper directory when it has one, else all of it. */
  async readonlyLayer(dir: string, context: string): Promise<string> {
    const upper = this.call(context, Method.Stat, { path: `${dir}/upper` });
    await this.done();
    return (await upper)?.type === 'dir' ? `${dir}/upper` : dir;
  }

  /** The upper and work directories in `dir`, made when missing. */
  upperLayer(context: string, dir: string): { upper: string; work: string } {
    const layer = { upper: `${dir}/upper`, work: `${dir}/work` };
    this.mkdir(context, layer.upper);
    this.mkdir(context, layer.work);
    return layer;
  }

  /** The layers of --overlay and --writable-tmpfs: read-only lowers (top first), one upper. */
  async overlays(): Promise<Layers> {
    const layers: Layers = { lowers: [] };
    for (const [index, overlay] of (this.cfg.overlays ?? []).entries()) {
      const context = `mounting overlay '${overlay.path}'`;
      const dir = await this.overlayDir(overlay, index, context);
      if (overlay.readonly) {
        layers.lowers.unshift(await this.readonlyLayer(dir, context));
        continue;
      }
      layers.upper = this.upperLayer(context, dir);
    }
    if (this.cfg.writableTmpfs === true) {
      const context = 'mounting the tmpfs of --writable-tmpfs';
      const data = `mode=755,size=${this.admin.sessiondirMaxSize}m`;
      const target = this.s.writable;
      this.mkdir(context, target);
      const flags = MS.NOSUID | MS.NODEV;
      const fstype = this.admin.memoryFsType;
      this.mount(context, { source: fstype, target, fstype, flags, data });
      layers.upper = this.upperLayer(context, target);
    }
    return layers;
  }

  /**
   * The final root: an overlay of the --overlay layers, the layer of missing mount points and
   * rootfs, writable when one layer takes the writes; or rootfs itself when there is no layer.
   */
  async finalRoot(useLayer: boolean, layers: Layers): Promise<string> {
    if (!useLayer && layers.lowers.length === 0 && layers.upper === undefined) {
      return this.s.rootfs;
    }
    const lowerDirs = [...layers.lowers, this.s.layer, this.s.rootfs];
    const lowers = lowerDirs.map(overlayPath).join(':');
    let data = `lowerdir=${lowers}`;
    if (layers.upper !== undefined) {
      data += `,upperdir=${overlayPath(layers.upper.upper)},workdir=${overlayPath(layers.upper.work)}`;
      // A user namespace may not write trusted.* xattrs: overlayfs keeps its own in user.*.
      if (this.cfg.userns === true) data += ',userxattr';
    }
    const flags = MS.NODEV | (layers.upper === undefined ? MS.RDONLY : 0);
    const overlay = { source: 'overlay', target: this.s.final, fstype: 'overlay', flags, data };
    const mode = this.admin.enableOverlay;
    if (mode === 'driver') {
      await this.fuseOverlay(lowerDirs, layers.upper);
    } else if (mode === 'try' && this.cfg.userns === true) {
      // Kernels before 5.11 refuse overlayfs in a user namespace: fuse-overlayfs then.
      try {
        await this.batch.now(Method.Mount, overlay);
      } catch (err) {
        const code = (err as { code?: string }).code ?? '';
        if (!['EPERM', 'EINVAL', 'ENODEV'].includes(code)) throw wrap(err, 'mounting the overlay');
        this.log.verbose({ code }, 'kernel overlayfs refused: fuse-overlayfs');
        await this.fuseOverlay(lowerDirs, layers.upper);
      }
    } else {
      this.mount('mounting the overlay', overlay);
    }
    return this.s.final;
  }

  /**
   * The final root's overlay through fuse-overlayfs (`enable overlay = driver`, or when the
   * kernel refuses overlayfs in a user namespace): mounted by the RPC server like squashfuse and
   * served by a daemon the master starts in the container's user namespace (when it has one) and
   * in a copy of its mount namespace, taken now, where the layers are. In the container's own
   * mount namespace pivot_root would move the daemon's root onto the overlay, and its lookups
   * would wait for itself. The master stops it when the container ends, and it dies with the
   * master.
   */
  async fuseOverlay(lowers: string[], upper: Layers['upper']): Promise<void> {
    const context = 'mounting the overlay with fuse-overlayfs';
    const dirs = [...lowers, ...(upper === undefined ? [] : [upper.upper, upper.work])];
    for (const dir of dirs) {
      if (/[:,]/.test(dir)) {
        throw new TsrunError(`${context}: layer path '${dir}' has ':' or ','`, 'EINVAL');
      }
    }
    // noacl: with ACLs on, the kernel asks for each directory's ACL, and a lower layer that has
    // none (squashfuse) makes every lookup of another user's directory fail with EOPNOTSUPP.
    let options = `noacl,lowerdir=${lowers.join(':')}`;
    if (upper !== undefined) options += `,upperdir=${upper.upper},workdir=${upper.work}`;
    const ids = { uid: this.cfg.user!.uid, gid: this.cfg.user!.gid };
    const args = {
      target: this.s.final,
      source: 'fuse-overlayfs',
      subtype: 'fuse-overlayfs',
      readonly: upper === undefined,
      ...ids,
    };
    try {
      await this.batch.now(Method.FuseMount, args);
    } catch (err) {
      throw wrap(err, context);
    }
    const fuseFd = this.receiveFd(context);
    const kinds = this.cfg.userns === true ? ['user', 'mnt'] : ['mnt'];
    const joinNs = kinds.map((k) => fs.openSync(`/proc/${this.containerPid}/ns/${k}`, 'r'));
    try {
      const argv = ['-f', '-o', options, '/dev/fd/3'];
      const daemon = { joinNs, unshare: CLONE.NEWNS };
      this.fuse.push(await startFuseDaemon('fuse-overlayfs', argv, fuseFd, this.log, daemon));
    } catch (err) {
      throw wrap(err, context);
    } finally {
      addon().close(fuseFd);
      for (const fd of joinNs) fs.closeSync(fd);
    }
    // Until it asks the daemon, the kernel knows the root only by the mount's options (rootmode,
    // no permission bits): a lookup now gives it the owner and mode of the layers' root.
    try {
      await this.batch.now(Method.Stat, { path: this.s.final });
    } catch (err) {
      throw wrap(err, context);
    }
    this.log.verbose({ options }, 'fuse-overlayfs started');
  }

  /** The one fd the RPC server sent through the fd channel. */
  receiveFd(context: string): number {
    if (this.fdChannel === undefined || this.fdChannel < 0) {
      throw new TsrunError(`${context}: no fd channel to the RPC server`, 'EBADF');
    }
    const { fds } = addon().recvFds(this.fdChannel, 16, 1);
    if (fds.length !== 1) throw new TsrunError(`${context}: no FUSE device came back`, 'EPROTO');
    return fds[0];
  }

  mountPoint(point: MountPoint, root: string): void {
    const context = `mounting ${point.what} on '${point.dest}'`;
    for (const m of point.mounts) this.mount(context, m, root);
    if (point.attrs !== undefined) {
      const attrs = mountAttrNames(point.attrs);
      this.log.verbose({ target: point.dest, root, attrs }, 'mount_setattr');
      const args = { path: point.dest, recursive: true, attrSet: point.attrs, attrClr: 0, root };
      void this.call(context, Method.MountSetattr, args);
    }
    if (point.mounts.some((m) => (m.flags & MS.BIND) !== 0)) {
      // A bind of a shared host mount joins its peer group: make it receive only (or nothing),
      // so that mounts made in the container never reach the host.
      const propagation = this.admin.mountSlave ? MS.SLAVE : MS.PRIVATE;
      const flags = MS.REC | propagation;
      this.mount(
        context,
        { source: null, target: point.dest, fstype: null, flags, data: null },
        root,
      );
    }
    if (point.what === 'dev' && minimalDev(this.cfg)) this.containedDev(context, root);
  }

  /** The minimal /dev of --contain, on the tmpfs just mounted at /dev. */
  containedDev(context: string, root: string): void {
    for (const dev of CONTAINED_DEVICES) {
      if (!fs.existsSync(`/dev/${dev}`)) continue;
      const node = `/dev/${dev}`;
      void this.call(context, Method.Touch, { path: node, mode: 0o644, root });
      this.mount(
        context,
        { source: node, target: node, fstype: null, flags: MS.BIND, data: null },
        root,
      );
    }
    if (this.admin.mountDevpts) {
      this.mkdir(context, '/dev/pts', 0o755, root);
      // In a user namespace group 5 (tty) is not mapped: the kernel refuses gid=5 there.
      const devpts =
        this.cfg.userns === true
          ? { ...DEVPTS_MOUNT, data: DEVPTS_MOUNT.data!.replace(',gid=5', '') }
          : DEVPTS_MOUNT;
      this.mount(context, devpts, root);
    }
    this.mkdir(context, '/dev/shm', 0o1777, root);
    this.mount(context, SHM_MOUNT, root);
    for (const [target, linkpath] of DEV_SYMLINKS) {
      void this.call(context, Method.Symlink, { target, linkpath, root });
    }
  }
}

/** Builds the container's root filesystem and pivots into it. */
export async function createContainer(
  cfg: TsrunEngineConfig,
  rpc: RpcClient,
  log: Logger,
  stage2Ready: Promise<void> = Promise.resolve(),
  fdChannel = -1,
  fuse: FuseDaemon[] = [],
  containerPid = 0,
): Promise<void> {
  const b = new Builder(cfg, rpc, log);
  b.fdChannel = fdChannel;
  b.fuse = fuse;
  b.containerPid = containerPid;
  const planned = planMountPoints(cfg, b.s, (p) => fs.statSync(p).isDirectory());

  // Batch 1: session dir, image, and what the image holds.
  b.session();
  await b.image();
  const layers = await b.overlays();
  const passwdStat = b.stat('/etc/passwd');
  const groupStat = b.stat('/etc/group');
  const cwdFound = b.resolve(cfg.cwd);
  const found = planned.map((point) => b.resolve(point.dest));
  await b.done();

  // Batch 2: the image's identity files.
  const texts = [b.readImageFile('/etc/passwd', await passwdStat)];
  texts.push(b.readImageFile('/etc/group', await groupStat));
  await b.done();
  const [passwd, group] = await Promise.all(texts);

  // Batch 3: everything else, down to the pivot.
  const cwd = await cwdFound;
  const cwdPoint = cwdMountPoint(cfg, planned, cwd.missing.length === 0 && cwd.type === 'dir');
  const cwdList = cwdPoint === undefined ? [] : [cwdPoint];
  const cwdResolved = cwdPoint === undefined ? [] : [cwd];
  b.identityFiles(cfg.user!, passwd, group);
  const layer = b.layer([...planned, ...cwdList], [...(await Promise.all(found)), ...cwdResolved]);
  const root = await b.finalRoot(layer.used, layers);
  for (const point of layer.points) b.mountPoint(point, root);
  if (cfg.netNamespace === true) {
    void b.call('bringing the loopback interface up', Method.LoopbackUp, {});
  }
  if (cfg.hostname !== undefined) {
    const name = cfg.hostname;
    void b.call(`setting hostname '${name}'`, Method.SetHostname, { name });
  }
  // Stage 2 loads its modules from the host's root: the pivot waits until it has.
  await stage2Ready;
  void b.call(`changing root to '${root}'`, Method.Chroot, { root });
  await b.done();
}
