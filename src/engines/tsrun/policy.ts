// Stage 1's checks of a request against the admin's tsrun.conf, and of the flags that name host
// paths (--home, --workdir, --scratch): what the admin forbids is refused with one line naming
// the directive; the settings the master needs travel in the engine config.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { usageError } from '../../common/errors';
import { log } from '../../common/log';
import type { AdminConfig } from '../../config/admin';
import type { AdminSettings, BindSpec, TsrunEngineConfig } from './config';
import { scratchName } from './mounts';

/** A `bind path` value: src[:dst]; undefined (and a debug record) when src does not exist. */
function adminBind(spec: string): BindSpec | undefined {
  const [source, destination = source] = spec.split(':');
  if (!source.startsWith('/') || !destination.startsWith('/')) {
    throw usageError(`tsrun.conf: 'bind path = ${spec}': paths must be absolute`);
  }
  if (!fs.existsSync(source)) {
    log().debug({ source }, "skipping a 'bind path' whose source does not exist");
    return undefined;
  }
  return { source, destination, readonly: false };
}

/** File systems `mount hostfs` leaves out: the kernel's own, memory and image mounts. */
const PSEUDO_FS = new Set([
  'proc',
  'sysfs',
  'devtmpfs',
  'devpts',
  'tmpfs',
  'ramfs',
  'cgroup',
  'cgroup2',
  'securityfs',
  'debugfs',
  'tracefs',
  'pstore',
  'bpf',
  'mqueue',
  'hugetlbfs',
  'configfs',
  'fusectl',
  'binfmt_misc',
  'autofs',
  'overlay',
  'squashfs',
  'nsfs',
  'efivarfs',
  'rpc_pipefs',
  'nfsd',
]);

/** Mount points `mount hostfs` never binds: the container has its own. */
const HOSTFS_SKIP = ['/', '/proc', '/sys', '/dev', '/run', '/var/lib/tsrun'];

/** Mount points of the host's disk and network file systems, for `mount hostfs = yes`. */
export function hostFileSystems(mountinfo: string): string[] {
  const out: string[] = [];
  for (const line of mountinfo.split('\n')) {
    const fields = line.split(' ');
    const dash = fields.indexOf('-');
    if (dash < 0 || fields.length < dash + 2) continue;
    const point = fields[4].replace(/\\(\d{3})/g, (_, o: string) =>
      String.fromCharCode(parseInt(o, 8)),
    );
    const fstype = fields[dash + 1];
    if (PSEUDO_FS.has(fstype)) continue;
    const skipped = HOSTFS_SKIP.some(
      (p) => point === p || (p !== '/' && point.startsWith(`${p}/`)),
    );
    if (!skipped && !out.includes(point)) out.push(point);
  }
  return out;
}

/** What of tsrun.conf the master and the RPC server act on. */
export function adminSettings(admin: AdminConfig): AdminSettings {
  return {
    maxLoopDevices: admin.maxLoopDevices,
    sharedLoopDevices: admin.sharedLoopDevices,
    sessiondirMaxSize: admin.sessiondirMaxSize,
    memoryFsType: admin.memoryFsType,
    configPasswd: admin.configPasswd,
    configGroup: admin.configGroup,
    configResolvConf: admin.configResolvConf,
    mountProc: admin.mountProc,
    mountSys: admin.mountSys,
    mountDev: admin.mountDev,
    mountDevpts: admin.mountDevpts,
    mountHome: admin.mountHome,
    mountTmp: admin.mountTmp,
    mountSlave: admin.mountSlave,
    enableOverlay: admin.enableOverlay,
    binds: [
      ...admin.bindPath.map(adminBind).filter((b): b is BindSpec => b !== undefined),
      ...(admin.mountHostfs
        ? hostFileSystems(fs.readFileSync('/proc/self/mountinfo', 'utf8')).map((p) => ({
            source: p,
            destination: p,
            readonly: false,
          }))
        : []),
    ],
  };
}

/** Names by id from a passwd- or group-style file. */
function names(file: string): Map<number, string> {
  const out = new Map<number, string>();
  try {
    for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
      const f = line.split(':');
      if (f.length > 2 && !out.has(Number(f[2]))) out.set(Number(f[2]), f[0]);
    }
  } catch {
    // No names: ids only.
  }
  return out;
}

function listed(list: string[], id: number, name: string | undefined): boolean {
  return list.includes(String(id)) || (name !== undefined && list.includes(name));
}

/** `limit container owners`, `groups` and `paths`, for every user (root too). */
export function checkContainerLimits(image: string, admin: AdminConfig): void {
  const owners = admin.limitContainerOwners;
  const groups = admin.limitContainerGroups;
  const paths = admin.limitContainerPaths;
  if (owners.length + groups.length + paths.length === 0) return;
  const st = fs.statSync(image);
  if (owners.length > 0 && !listed(owners, st.uid, names('/etc/passwd').get(st.uid))) {
    throw usageError(
      `image '${image}' is owned by uid ${st.uid}, not by one of 'limit container owners' in tsrun.conf`,
    );
  }
  if (groups.length > 0 && !listed(groups, st.gid, names('/etc/group').get(st.gid))) {
    throw usageError(
      `image '${image}' belongs to gid ${st.gid}, not to one of 'limit container groups' in tsrun.conf`,
    );
  }
  if (paths.length > 0) {
    const real = fs.realpathSync(image);
    const inside = paths.some((p) => real === p || real.startsWith(p.endsWith('/') ? p : `${p}/`));
    if (!inside) {
      throw usageError(
        `image '${image}' is outside 'limit container paths' (${paths.join(', ')}) in tsrun.conf`,
      );
    }
  }
}

function existingDir(flag: string, dir: string): string {
  let st: fs.Stats;
  try {
    st = fs.statSync(dir);
  } catch {
    throw usageError(`${flag} '${dir}' does not exist`);
  }
  if (!st.isDirectory()) throw usageError(`${flag} '${dir}' is not a directory`);
  return fs.realpathSync(dir);
}

/** Makes `dir` (and its parents) unless it exists. */
function makeDir(dir: string, mode: number): void {
  if (fs.existsSync(dir)) return;
  fs.mkdirSync(dir, { recursive: true, mode });
  fs.chmodSync(dir, mode);
}

/**
 * The admin's rules that concern the request (pid namespace, user binds), and the host paths of
 * --home, --workdir and --scratch. Runs after the user's identity is known.
 */
export function applyPolicy(cfg: TsrunEngineConfig, admin: AdminConfig): void {
  if (cfg.pidNamespace && !admin.allowPidNs) {
    throw usageError(
      "a pid namespace (--pid, --containall, an instance) is not allowed ('allow pid ns = no' in tsrun.conf)",
    );
  }
  const userBinds = cfg.binds.length > 0 || (cfg.scratch ?? []).length > 0;
  if (userBinds && !admin.userBindControl) {
    throw usageError(
      "--bind and --scratch are not allowed ('user bind control = no' in tsrun.conf)",
    );
  }
  if (admin.enableOverlay === 'no') {
    const asked = (cfg.overlays ?? []).length > 0 || cfg.writableTmpfs === true;
    if (asked) {
      throw usageError(
        "--overlay and --writable-tmpfs need overlayfs ('enable overlay = no' in tsrun.conf)",
      );
    }
  }
  if (cfg.homeBind !== undefined) {
    const source = existingDir('--home', cfg.homeBind.source);
    const destination = path.posix.normalize(cfg.homeBind.destination);
    if (destination.split('/').includes('..') || destination === '/') {
      throw usageError(`--home destination '${cfg.homeBind.destination}' is not allowed`);
    }
    cfg.homeBind = { source, destination };
    if (cfg.user !== undefined) cfg.user.home = destination;
  }
  for (const dest of cfg.scratch ?? []) {
    const normal = path.posix.normalize(dest);
    if (!dest.startsWith('/') || normal === '/' || dest.split('/').includes('..')) {
      throw usageError(`--scratch '${dest}' must be an absolute path other than '/', without '..'`);
    }
  }
  if (cfg.workdir !== undefined) {
    const workdir = existingDir('--workdir', cfg.workdir);
    cfg.workdir = workdir;
    if (cfg.contain) {
      makeDir(`${workdir}/tmp`, 0o1777);
      makeDir(`${workdir}/var_tmp`, 0o1777);
      makeDir(`${workdir}/home`, 0o755);
    }
    (cfg.scratch ?? []).forEach((dest, i) => {
      makeDir(`${workdir}/scratch/${scratchName(dest, i)}`, 0o755);
    });
  }
}
