// Where a container's cgroup goes and what is written in it. Pure functions over the host's
// cgroup mounts: a controller mounted as cgroup v1 is used there (hybrid and v1 hosts), else the
// cgroup v2 hierarchy is used when it offers the controller. Runs in stage 1 (to refuse early what
// cannot be applied) and in the master (cgroups.ts), both on the host.
import { usageError } from '../../common/errors';
import type { LinuxResources } from './cgroups-spec';

export type Controller = 'memory' | 'cpu' | 'cpuset' | 'pids';
export type CgroupVersion = 1 | 2;

/** A cgroup file system mount from /proc/self/mountinfo. */
export interface CgroupMount {
  mountPoint: string;
  version: CgroupVersion;
  /** v1: the mount's super options (its controllers among them); v2: empty. */
  options: string[];
}

/** Where each controller can be used on this host. */
export interface CgroupLayout {
  v1: Partial<Record<Controller, string>>;
  /** The cgroup v2 mount and the controllers its root offers (cgroup.controllers). */
  v2?: { mountPoint: string; controllers: string[] };
}

/** A controller and the hierarchy (mount point) it is used on. */
export interface Placement {
  controller: Controller;
  version: CgroupVersion;
  mountPoint: string;
}

/** One value written in the container's cgroup directory of `controller`. */
export interface CgroupWrite {
  controller: Controller;
  file: string;
  value: string;
}

/** Undoes mountinfo's octal escapes (\040 for a space). */
function unescape(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/** The cgroup and cgroup2 mounts of a mountinfo text, in order. */
export function parseCgroupMounts(mountinfo: string): CgroupMount[] {
  const mounts: CgroupMount[] = [];
  for (const line of mountinfo.split('\n')) {
    const [left, right] = line.split(' - ');
    if (right === undefined) continue;
    const [fstype, , superOptions = ''] = right.split(' ');
    const mountPoint = unescape(left.split(' ')[4] ?? '');
    if (fstype === 'cgroup')
      mounts.push({ mountPoint, version: 1, options: superOptions.split(',') });
    if (fstype === 'cgroup2') mounts.push({ mountPoint, version: 2, options: [] });
  }
  return mounts;
}

const CONTROLLERS: Controller[] = ['memory', 'cpu', 'cpuset', 'pids'];

/**
 * The layout from the mounts; `controllersOf` reads a v2 mount's cgroup.controllers. The v2 mount
 * preferred is /sys/fs/cgroup (a v2-only host), then /sys/fs/cgroup/unified (hybrid).
 */
export function layoutOf(mounts: CgroupMount[], controllersOf: (mount: string) => string[]) {
  const layout: CgroupLayout = { v1: {} };
  for (const m of mounts.filter((m) => m.version === 1)) {
    for (const c of CONTROLLERS) if (m.options.includes(c)) layout.v1[c] ??= m.mountPoint;
  }
  const v2 = mounts.filter((m) => m.version === 2).map((m) => m.mountPoint);
  const v2Mount = ['/sys/fs/cgroup', '/sys/fs/cgroup/unified'].find((p) => v2.includes(p)) ?? v2[0];
  if (v2Mount !== undefined) {
    layout.v2 = { mountPoint: v2Mount, controllers: controllersOf(v2Mount) };
  }
  return layout;
}

/** The controllers a resources object needs. */
export function neededControllers(res: LinuxResources): Controller[] {
  const set = (o: object | undefined, keys: string[]) =>
    keys.some((k) => (o as Record<string, unknown> | undefined)?.[k] !== undefined);
  const needed: Controller[] = [];
  if (set(res.memory, ['limit', 'reservation', 'swap', 'disableOOMKiller'])) needed.push('memory');
  if (set(res.cpu, ['shares', 'quota', 'period'])) needed.push('cpu');
  if (set(res.cpu, ['cpus', 'mems'])) needed.push('cpuset');
  if (set(res.pids, ['limit'])) needed.push('pids');
  return needed;
}

/** Where each needed controller is used; refuses a controller the host does not offer. */
export function placeControllers(needed: Controller[], layout: CgroupLayout): Placement[] {
  return needed.map((controller) => {
    const v1 = layout.v1[controller];
    if (v1 !== undefined) return { controller, version: 1, mountPoint: v1 };
    if (layout.v2?.controllers.includes(controller)) {
      return { controller, version: 2, mountPoint: layout.v2.mountPoint };
    }
    throw usageError(
      `the cgroup controller '${controller}' is not available: neither mounted as cgroup v1 ` +
        "nor listed in cgroup v2's cgroup.controllers",
    );
  });
}

/** cgroup v2's cpu.weight for OCI cpu shares (the same conversion as runc and crun). */
export function sharesToWeight(shares: number): number {
  return 1 + Math.floor(((shares - 2) * 9999) / 262142);
}

type Files = [string, string | number | undefined][];

function memoryFiles(res: LinuxResources, version: CgroupVersion): Files {
  const m = res.memory ?? {};
  if (version === 1) {
    // The limit before memory plus swap: the kernel keeps memsw at or above the limit.
    return [
      ['memory.limit_in_bytes', m.limit],
      ['memory.memsw.limit_in_bytes', m.swap],
      ['memory.soft_limit_in_bytes', m.reservation],
      ['memory.oom_control', m.disableOOMKiller === true ? 1 : undefined],
    ];
  }
  if (m.disableOOMKiller === true) {
    throw usageError('memory.disableOOMKiller is not supported on cgroup v2 (no kernel switch)');
  }
  const swap = m.swap === undefined || m.limit === undefined ? undefined : m.swap - m.limit;
  return [
    ['memory.max', m.limit],
    ['memory.swap.max', swap],
    ['memory.low', m.reservation],
  ];
}

function cpuFiles(res: LinuxResources, version: CgroupVersion): Files {
  const c = res.cpu ?? {};
  if (version === 1) {
    // The period before the quota: the kernel checks the quota against the period in force.
    return [
      ['cpu.shares', c.shares],
      ['cpu.cfs_period_us', c.period],
      ['cpu.cfs_quota_us', c.quota],
    ];
  }
  const bandwidth =
    c.quota === undefined && c.period === undefined
      ? undefined
      : `${c.quota ?? 'max'} ${c.period ?? 100000}`;
  const weight = c.shares === undefined ? undefined : sharesToWeight(c.shares);
  return [
    ['cpu.weight', weight],
    ['cpu.max', bandwidth],
  ];
}

function filesOf(controller: Controller, res: LinuxResources, version: CgroupVersion): Files {
  switch (controller) {
    case 'memory':
      return memoryFiles(res, version);
    case 'cpu':
      return cpuFiles(res, version);
    case 'cpuset':
      return [
        ['cpuset.cpus', res.cpu?.cpus],
        ['cpuset.mems', res.cpu?.mems],
      ];
    case 'pids':
      return [['pids.max', res.pids?.limit]];
  }
}

/** What to write, in order, for the placements chosen. */
export function cgroupWrites(res: LinuxResources, placements: Placement[]): CgroupWrite[] {
  return placements.flatMap(({ controller, version }) =>
    filesOf(controller, res, version)
      .filter(([, value]) => value !== undefined)
      .map(([file, value]) => ({ controller, file, value: String(value) })),
  );
}

/** The ranges of a kernel list like "0-3,5": [[0, 3], [5, 5]]. */
export function parseRanges(list: string): [number, number][] {
  return list
    .trim()
    .split(',')
    .filter(Boolean)
    .map((part) => {
      const [lo, hi = lo] = part.split('-').map(Number);
      return [lo, hi];
    });
}

/** Whether every number of the list `wanted` is in the list `available` (the kernel merges runs). */
export function listWithin(wanted: string, available: string): boolean {
  const have = parseRanges(available);
  return parseRanges(wanted).every(
    ([lo, hi]) => lo <= hi && have.some(([a, b]) => a <= lo && hi <= b),
  );
}
