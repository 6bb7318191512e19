// Stage 1 of the tsrun engine: checks the request (image, binds, flags) on the host and decides the
// starter config: namespaces, target ids, capabilities. Runs on the host, as the caller.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { usageError } from '../../common/errors';
import { addon } from '../../native/addon';
import { CAPABILITIES } from '../../native/constants';
import type { StarterConfig } from '../config';
import { log } from '../../common/log';
import { detectImage, ImageSource } from '../../images/detect';
import { loopUsers, mountOptionsOf } from '../../images/host';
import { AdminConfig, loadAdminConfig } from '../../config/admin';
import { prepareCgroups } from './cgroups';
import type { TsrunEngineConfig, UserInfo } from './config';
import { preparePrivileges } from './prepare-privileges';
import { adminSettings, applyPolicy, checkContainerLimits } from './policy';
import { fakerootIdentity, prepareUserNamespace, wantsUserNamespace } from './userns';

/** Where every container mounts its session tmpfs, in its own mount namespace. */
export const DEFAULT_SESSION_DIR = '/var/lib/tsrun/mnt/session';

function statOrFail(file: string, what: string): fs.Stats {
  try {
    return fs.statSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw usageError(`${what} '${file}' does not exist`);
    throw usageError(`${what} '${file}': ${code ?? (err as Error).message}`);
  }
}

/**
 * An ext3 file is never opened read-write while a loop device uses it, nor at all while one uses
 * it read-write: two writers, or a reader beside a writer, corrupt or mislead each other.
 */
function checkExt3InUse(file: string, writable: boolean, offset = 0): void {
  for (const user of loopUsers(file).filter((u) => u.offset === offset)) {
    if (writable || !user.readonly) {
      const how = user.readonly ? 'read-only' : 'read-write';
      throw usageError(`image '${file}' is already attached ${how} to ${user.device}`);
    }
  }
}

/** A sandbox directory on a noexec file system cannot run anything. */
function checkExecutable(image: string): void {
  const options = mountOptionsOf(image);
  if (options.includes('noexec')) {
    throw usageError(`image '${image}' is on a file system mounted noexec: nothing in it can run`);
  }
  if (options.includes('nosuid')) {
    log().warn(
      { image },
      'image on a nosuid file system: its setuid programs run without privilege',
    );
  }
}

/** The admin's `allow container ...` for the image's file system. */
function checkAllowed(source: ImageSource, admin: AdminConfig): void {
  const rule =
    source.format === 'sandbox'
      ? { allowed: admin.allowContainerDir, name: 'dir', what: 'sandbox directories' }
      : source.fstype === 'squashfs'
        ? { allowed: admin.allowContainerSquashfs, name: 'squashfs', what: 'squashfs images' }
        : { allowed: admin.allowContainerExtfs, name: 'extfs', what: 'ext3 images' };
  if (!rule.allowed) {
    const detail = source.format === 'sif' ? ` (SIF file with a ${source.fstype} partition)` : '';
    throw usageError(
      `image '${source.path}'${detail}: ${rule.what} are not allowed ('allow container ${rule.name} = no' in tsrun.conf)`,
    );
  }
}

/** What the image is; --writable only for the formats that can be written. */
function checkImage(cfg: TsrunEngineConfig, admin: AdminConfig): ImageSource {
  const source = detectImage(cfg.image);
  checkAllowed(source, admin);
  const sifOverlay = source.overlay !== undefined;
  if (cfg.writable && (source.format === 'squashfs' || (source.format === 'sif' && !sifOverlay))) {
    const what = source.format === 'sif' ? 'a SIF file without an overlay partition' : 'squashfs';
    throw usageError(`--writable: image '${cfg.image}' is ${what}, which is read-only`);
  }
  if (source.fstype === 'ext3') checkExt3InUse(cfg.image, cfg.writable, source.offset);
  if (source.format === 'sandbox') checkExecutable(cfg.image);
  return source;
}

/** Runs `fn`; its error's message is put after `what` instead of the image wording. */
function withWhat<T>(what: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    const message = (err as Error).message.replace(/^image '[^']*':? ?/, '');
    throw usageError(`${what}: ${message}`);
  }
}

/**
 * A SIF file's overlay partition is its first overlay, as in Singularity: read-only, or taking
 * the writes with --writable (the image itself stays read-only).
 */
function addSifOverlay(cfg: TsrunEngineConfig, source: ImageSource, admin: AdminConfig): void {
  if (source.overlay === undefined) return;
  if (admin.enableOverlay === 'no') {
    if (cfg.writable) {
      throw usageError(
        `--writable: the overlay partition of '${cfg.image}' needs overlayfs ('enable overlay = no' in tsrun.conf)`,
      );
    }
    return; // The partition stays unused: the image runs as it is.
  }
  const { offset, size } = source.overlay;
  const overlay = { format: 'sif', path: cfg.image, fstype: 'ext3', offset, size } as const;
  cfg.overlays = [
    { path: cfg.image, readonly: !cfg.writable, source: overlay },
    ...(cfg.overlays ?? []),
  ];
  cfg.writable = false;
}

/** Each --overlay is a directory, an ext3 file, or (read-only) a squashfs file. */
function checkOverlays(cfg: TsrunEngineConfig): void {
  const overlays = cfg.overlays ?? [];
  for (const overlay of overlays) {
    const own = overlay.source;
    const what = `--overlay '${overlay.path}'`;
    const source = own ?? withWhat(what, () => detectImage(overlay.path));
    if (own === undefined && source.format === 'sif') {
      throw usageError(`${what}: SIF files as overlays are not supported`);
    }
    if (source.format === 'squashfs' && !overlay.readonly) {
      throw usageError(`${what}: a squashfs overlay is read-only: add ':ro'`);
    }
    if (source.fstype === 'ext3') checkExt3InUse(overlay.path, !overlay.readonly, source.offset);
    overlay.source = source;
  }
  const paths = overlays.map((o) => o.path);
  const twice = paths.find((p, i) => paths.indexOf(p) !== i);
  if (twice !== undefined) throw usageError(`--overlay '${twice}' is given twice`);
  if (cfg.writable && overlays.length > 0) {
    throw usageError(
      '--writable and --overlay exclude each other (an --overlay without :ro takes the writes)',
    );
  }
  const writableOverlays = overlays.filter((o) => !o.readonly).length;
  if (writableOverlays > 1) throw usageError('--overlay: only one overlay can be writable');
  const writers = [
    cfg.writable && '--writable',
    cfg.writableTmpfs === true && '--writable-tmpfs',
    writableOverlays > 0 && 'a writable --overlay',
  ].filter((w): w is string => w !== false);
  if (writers.length > 1) {
    throw usageError(
      `${writers.join(' and ')} exclude each other: only one layer takes the writes`,
    );
  }
}

function hasDotDot(p: string): boolean {
  return p.split('/').includes('..');
}

/** Destinations that would hide what the container needs to run. */
function reservedDestination(dest: string): boolean {
  const normal = path.posix.normalize(dest);
  return normal === '/' || normal === '/proc' || normal.startsWith('/proc/');
}

function checkBinds(cfg: TsrunEngineConfig): void {
  for (const bind of cfg.binds) {
    statOrFail(bind.source, 'bind source');
    if (hasDotDot(bind.destination)) {
      throw usageError(`bind destination '${bind.destination}' must not contain '..'`);
    }
    if (reservedDestination(bind.destination)) {
      throw usageError(`bind destination '${bind.destination}' is reserved: '/' and /proc`);
    }
  }
  if (cfg.pwd !== undefined && hasDotDot(cfg.pwd)) {
    throw usageError(`--pwd '${cfg.pwd}' must not contain '..'`);
  }
}

const HOST_NAME_MAX = 64;

function checkHostname(name: string | undefined): void {
  if (name === undefined) return;
  if (name === '') throw usageError('--hostname must not be empty');
  if (Buffer.byteLength(name) > HOST_NAME_MAX) {
    throw usageError(`--hostname '${name}' is longer than ${HOST_NAME_MAX} bytes`);
  }
}

/** Group names from the host's /etc/group, by gid. */
function hostGroupNames(): Map<number, string> {
  const names = new Map<number, string>();
  let text = '';
  try {
    text = fs.readFileSync('/etc/group', 'utf8');
  } catch {
    return names;
  }
  for (const line of text.split('\n')) {
    const [name, , gid] = line.split(':');
    if (name && gid !== undefined && !names.has(Number(gid))) names.set(Number(gid), name);
  }
  return names;
}

/** Gecos from the host's /etc/passwd (os.userInfo does not give it). */
function hostGecos(uid: number): string {
  try {
    const line = fs
      .readFileSync('/etc/passwd', 'utf8')
      .split('\n')
      .find((l) => l.split(':')[2] === String(uid));
    return line?.split(':')[4] ?? '';
  } catch {
    return '';
  }
}

export function currentUser(): UserInfo {
  const info = os.userInfo();
  const gid = process.getgid!();
  const names = hostGroupNames();
  const gids = [gid, ...process.getgroups!().filter((g) => g !== gid)];
  return {
    uid: info.uid,
    gid,
    name: info.username,
    gecos: hostGecos(info.uid),
    home: info.homedir,
    shell: info.shell ?? '/bin/sh',
    groups: gids.map((g) => ({ gid: g, name: names.get(g) ?? String(g) })),
  };
}

/** Every capability of this process's bounding set: never ask for one outside it. */
export function boundingCapabilities(): string[] {
  const last = Math.min(addon().capLast(), CAPABILITIES.length - 1);
  const caps: string[] = [];
  for (let cap = 0; cap <= last; cap++) {
    if (addon().capBoundingRead(cap)) caps.push(CAPABILITIES[cap]);
  }
  return caps;
}

/**
 * The namespaces the config names by path are joined, not created: each must be a namespace
 * file of that kind (its link reads KIND:[inode]), and must not be asked for as a new one too.
 */
function joinNamespaces(cfg: TsrunEngineConfig, starter: StarterConfig): void {
  for (const [kind, file] of Object.entries(cfg.joinNamespaces ?? {})) {
    const k = kind as 'net' | 'uts' | 'ipc';
    let link: string;
    try {
      link = fs.readlinkSync(file);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw usageError(
        `joinNamespaces.${k} '${file}': ${code === 'ENOENT' ? 'does not exist' : `not a namespace (${code})`}`,
      );
    }
    if (!link.startsWith(`${k}:[`)) {
      throw usageError(`joinNamespaces.${k} '${file}' is a '${link}', not a ${k} namespace`);
    }
    if (starter.namespaces[k] === true) {
      throw usageError(`joinNamespaces.${k}: a new ${k} namespace is asked for too`);
    }
    starter.joinNamespaces.push({ kind: k, path: file });
  }
}

/** Fills in the starter config for a container run as root. */
export function prepareConfig(cfg: TsrunEngineConfig, starter: StarterConfig): void {
  if (cfg.join !== undefined) {
    const { prepareJoin } = require('./join') as typeof import('./join');
    return prepareJoin(cfg, starter);
  }
  if ((cfg.action === 'start') !== (cfg.instance !== undefined)) {
    throw usageError("engine config: action 'start' goes with instance, and only with it");
  }
  if (cfg.instance !== undefined) {
    // An instance has its own pid and ipc namespaces, with tsrun-init as pid 1.
    cfg.pidNamespace = true;
    cfg.ipcNamespace = true;
    cfg.noInit = false;
  }
  const userns = wantsUserNamespace(cfg, process.getuid!());
  cfg.userns = userns;
  const admin = loadAdminConfig();
  cfg.admin = adminSettings(admin);
  cfg.image = path.resolve(cfg.image);
  cfg.source = checkImage(cfg, admin);
  checkContainerLimits(cfg.image, admin);
  // What an overlay is, stage 1 finds out itself: a source in the request is not trusted.
  cfg.overlays = (cfg.overlays ?? []).map(({ path: file, readonly }) => ({ path: file, readonly }));
  addSifOverlay(cfg, cfg.source, admin);
  checkOverlays(cfg);
  checkBinds(cfg);
  const caller = currentUser();
  cfg.user = cfg.fakeroot === true ? fakerootIdentity(cfg, caller) : caller;
  applyPolicy(cfg, admin);
  // Not from the request: where the mounts go is not the caller's choice.
  cfg.sessionDir = DEFAULT_SESSION_DIR;
  checkHostname(cfg.hostname);
  if (cfg.hostname !== undefined) cfg.utsNamespace = true;
  // The limits come from the file, read here: resources in the request are not trusted.
  cfg.cgroups = cfg.applyCgroups === undefined ? undefined : prepareCgroups(cfg.applyCgroups);

  starter.namespaces = {
    mnt: true,
    pid: cfg.pidNamespace,
    uts: cfg.utsNamespace,
    ipc: cfg.ipcNamespace,
    net: cfg.netNamespace === true,
  };
  joinNamespaces(cfg, starter);
  const bounding = boundingCapabilities();
  if (userns) {
    // The privileges are decided for the caller; the namespace then sets the ids inside.
    const callerCfg = { ...cfg, user: caller };
    preparePrivileges(callerCfg, starter, bounding, admin.rootDefaultCapabilities);
    prepareUserNamespace(cfg, starter, caller, bounding);
    return;
  }
  preparePrivileges(cfg, starter, bounding, admin.rootDefaultCapabilities);
}
