// createContainer of the tsrun engine. Runs in the master, on the host; every privileged step is
// an RPC call served by the RPC server inside the container's mount namespace, as root. Order:
// session tmpfs, image on rootfs, missing mount points in a layer, read-only overlay of layer and
// rootfs as the final root, system mounts, home, identity files, binds, cwd, hostname, pivot.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { withContext } from '../../common/errors';
import type { Logger } from '../../common/log';
import { MS, mountAttrNames, mountFlagNames } from '../../native/constants';
import type { RpcClient } from '../../rpc/client';
import type { TsrunEngineConfig, UserInfo } from './config';
import { makeGroup, makePasswd } from './identity';
import {
  CONTAINED_DEVICES,
  cwdMountPoint,
  DEV_SYMLINKS,
  DEVPTS_MOUNT,
  MountPoint,
  overlayPath,
  planMountPoints,
  SessionPaths,
  sessionPaths,
  SHM_MOUNT,
} from './mounts';
import { Method, MountArgs, ResolveResult } from './rpc-types';

/** Size of the session tmpfs (Singularity's `sessiondir max size` default, in MiB). */
const SESSION_SIZE_MIB = 16;

class Builder {
  readonly s: SessionPaths;

  constructor(
    readonly cfg: TsrunEngineConfig,
    readonly rpc: RpcClient,
    readonly log: Logger,
  ) {
    this.s = sessionPaths(cfg.sessionDir!);
  }

  async mount(m: MountArgs, root?: string): Promise<void> {
    this.log.verbose(
      {
        source: m.source,
        target: m.target,
        root,
        fstype: m.fstype,
        flags: mountFlagNames(m.flags),
        data: m.data,
      },
      'mount',
    );
    await this.rpc.call(Method.Mount, root === undefined ? m : { ...m, root });
  }

  async setAttrs(dest: string, attrs: number, root: string): Promise<void> {
    this.log.verbose({ target: dest, root, attrs: mountAttrNames(attrs) }, 'mount_setattr');
    const args = { path: dest, recursive: true, attrSet: attrs, attrClr: 0, root };
    await this.rpc.call(Method.MountSetattr, args);
  }

  async mkdir(dir: string, mode = 0o755, root?: string): Promise<void> {
    await this.rpc.call(Method.MkdirAll, { path: dir, mode, root });
  }

  /**
   * Session tmpfs and its folders. The mount point is one fixed, empty host directory that every
   * container shares (each mounts its own tmpfs there, in its own namespace); mounts made below
   * '/' stay in the container's namespace (rslave).
   */
  async session(): Promise<void> {
    fs.mkdirSync(this.s.root, { recursive: true, mode: 0o755 });
    await this.mount({
      source: null,
      target: '/',
      fstype: null,
      flags: MS.REC | MS.SLAVE,
      data: null,
    });
    await this.mount({
      source: 'tmpfs',
      target: this.s.root,
      fstype: 'tmpfs',
      flags: MS.NOSUID | MS.NODEV,
      data: `mode=755,size=${SESSION_SIZE_MIB}m`,
    });
    for (const dir of [this.s.rootfs, this.s.layer, this.s.final, this.s.files]) {
      await this.mkdir(dir);
    }
    if (this.cfg.contain) {
      await this.mkdir(this.s.tmp, 0o1777);
      await this.mkdir(this.s.varTmp, 0o1777);
      await this.mkdir(this.s.home, 0o755);
    }
  }

  /** The image on rootfs: a bind of the sandbox directory, read-only unless --writable. */
  async image(): Promise<void> {
    const flags = MS.BIND | MS.NODEV;
    await this.mount({
      source: this.cfg.image,
      target: this.s.rootfs,
      fstype: null,
      flags,
      data: null,
    });
    if (!this.cfg.writable) {
      await this.mount({
        source: null,
        target: this.s.rootfs,
        fstype: null,
        flags: flags | MS.REMOUNT | MS.RDONLY,
        data: null,
      });
    }
  }

  async resolve(dest: string): Promise<ResolveResult> {
    return this.rpc.call<ResolveResult>(Method.Resolve, { root: this.s.rootfs, path: dest });
  }

  async readImageFile(file: string): Promise<string> {
    const st = await this.rpc.call<{ type: string } | null>(Method.Stat, {
      path: file,
      root: this.s.rootfs,
    });
    if (st === null) return '';
    const data = await this.rpc.call<Uint8Array>(Method.ReadFile, {
      path: file,
      root: this.s.rootfs,
      maxSize: 4 << 20,
    });
    return Buffer.from(data).toString('utf8');
  }

  /** /etc/passwd and /etc/group with the user in them, written to the session dir. */
  async identityFiles(user: UserInfo): Promise<void> {
    const passwd = makePasswd(await this.readImageFile('/etc/passwd'), user);
    const group = makeGroup(await this.readImageFile('/etc/group'), user);
    await this.rpc.call(Method.WriteFile, {
      path: `${this.s.files}/passwd`,
      data: Buffer.from(passwd),
      mode: 0o644,
    });
    await this.rpc.call(Method.WriteFile, {
      path: `${this.s.files}/group`,
      data: Buffer.from(group),
      mode: 0o644,
    });
  }

  /**
   * Creates in the layer each mount point the image lacks; returns the points to mount (optional
   * points the image lacks are dropped) and whether the layer holds anything.
   */
  async layer(points: MountPoint[]): Promise<{ points: MountPoint[]; used: boolean }> {
    const kept: MountPoint[] = [];
    let used = false;
    for (const point of points) {
      const r = await this.resolve(point.dest);
      if (r.missing.length === 0) {
        kept.push(point);
        continue;
      }
      if (point.optional) continue;
      if (this.cfg.writable) {
        this.log.warn({ dest: point.dest }, 'mount point missing in a writable image: skipped');
        continue;
      }
      await this.addToLayer(point, path.posix.join(r.resolved, ...r.missing));
      kept.push(point);
      used = true;
    }
    return { points: kept, used };
  }

  async addToLayer(point: MountPoint, inRoot: string): Promise<void> {
    const target = `${this.s.layer}${inRoot}`;
    this.log.debug({ dest: point.dest, layer: target }, 'mount point created in layer');
    if (point.kind === 'dir') return this.mkdir(target);
    await this.mkdir(path.posix.dirname(target));
    await this.rpc.call(Method.Touch, { path: target, mode: 0o644 });
  }

  /** The final root: a read-only overlay of layer over rootfs, or rootfs itself. */
  async finalRoot(useLayer: boolean): Promise<string> {
    if (!useLayer) return this.s.rootfs;
    const data = `lowerdir=${overlayPath(this.s.layer)}:${overlayPath(this.s.rootfs)}`;
    await this.mount({
      source: 'overlay',
      target: this.s.final,
      fstype: 'overlay',
      flags: MS.RDONLY | MS.NODEV,
      data,
    });
    return this.s.final;
  }

  async mountPoint(point: MountPoint, root: string): Promise<void> {
    await withContext(`mounting ${point.what} on '${point.dest}'`, async () => {
      for (const m of point.mounts) await this.mount(m, root);
      if (point.attrs !== undefined) await this.setAttrs(point.dest, point.attrs, root);
      if (point.what === 'dev' && this.cfg.contain) await this.containedDev(root);
    });
  }

  /** The minimal /dev of --contain, on the tmpfs just mounted at /dev. */
  async containedDev(root: string): Promise<void> {
    for (const dev of CONTAINED_DEVICES) {
      if (!fs.existsSync(`/dev/${dev}`)) continue;
      await this.rpc.call(Method.Touch, { path: `/dev/${dev}`, mode: 0o644, root });
      await this.mount(
        { source: `/dev/${dev}`, target: `/dev/${dev}`, fstype: null, flags: MS.BIND, data: null },
        root,
      );
    }
    await this.mkdir('/dev/pts', 0o755, root);
    await this.mount(DEVPTS_MOUNT, root);
    await this.mkdir('/dev/shm', 0o1777, root);
    await this.mount(SHM_MOUNT, root);
    for (const [target, linkpath] of DEV_SYMLINKS) {
      await this.rpc.call(Method.Symlink, { target, linkpath, root });
    }
  }
}

/** Builds the container's root filesystem and pivots into it. */
export async function createContainer(
  cfg: TsrunEngineConfig,
  rpc: RpcClient,
  log: Logger,
): Promise<void> {
  const b = new Builder(cfg, rpc, log);
  await withContext('creating the session dir', () => b.session());
  await withContext(`mounting image '${cfg.image}'`, () => b.image());
  await withContext('writing /etc/passwd and /etc/group', () => b.identityFiles(cfg.user!));

  let points = planMountPoints(cfg, b.s, (p) => fs.statSync(p).isDirectory());
  const cwd = await b.resolve(cfg.cwd);
  const cwdPoint = cwdMountPoint(cfg, points, cwd.missing.length === 0 && cwd.type === 'dir');
  if (cwdPoint !== undefined) points.push(cwdPoint);

  const layer = await withContext('creating mount points', () => b.layer(points));
  points = layer.points;
  const root = await withContext('mounting the overlay', () => b.finalRoot(layer.used));
  for (const point of points) await b.mountPoint(point, root);

  if (cfg.hostname !== undefined) {
    await withContext(`setting hostname '${cfg.hostname}'`, () =>
      rpc.call(Method.SetHostname, { name: cfg.hostname }),
    );
  }
  await withContext(`changing root to '${root}'`, () => rpc.call(Method.Chroot, { root }));
}
