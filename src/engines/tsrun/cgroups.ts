// The container's cgroup (--apply-cgroups), on the host. Stage 1 checks the file against the host
// (prepareCgroups); the master creates `tsrun/<container id>` in each hierarchy it uses, writes the
// limits and moves the container process into it before stage 2 is let go (ContainerCgroup.apply),
// and removes it when the container has ended (remove). An exit of the master before that (an
// error, a signal during set-up) removes it from the process's exit handler (removeSync).
import * as fs from 'node:fs';
import { TsrunError, usageError } from '../../common/errors';
import { log } from '../../common/log';
import {
  CgroupLayout,
  cgroupWrites,
  layoutOf,
  listWithin,
  neededControllers,
  parseCgroupMounts,
  Placement,
  placeControllers,
} from './cgroups-plan';
import { LinuxResources, loadResourcesFile } from './cgroups-spec';

/** The folder below each hierarchy's root that holds tsrun's containers. */
export const CGROUP_PARENT = 'tsrun';

/** The file system calls made on cgroup files; tests give a directory tree instead. */
export interface CgroupFs {
  mkdir(dir: string): void;
  rmdir(dir: string): void;
  read(file: string): string;
  write(file: string, value: string): void;
  exists(file: string): boolean;
  kill(pid: number): void;
}

export const hostCgroupFs: CgroupFs = {
  mkdir: (dir) => fs.mkdirSync(dir),
  rmdir: (dir) => fs.rmdirSync(dir),
  read: (file) => fs.readFileSync(file, 'utf8'),
  write: (file, value) => fs.writeFileSync(file, value),
  exists: (file) => fs.existsSync(file),
  kill: (pid) => process.kill(pid, 'SIGKILL'),
};

/** How long removal waits for the processes of a cgroup to be gone. */
const REMOVE_TIMEOUT_MS = 3000;
const REMOVE_STEP_MS = 10;

function codeOf(err: unknown): string {
  return (err as NodeJS.ErrnoException).code ?? 'EIO';
}

/** Runs a file call; a failure becomes `<call> '<path>': <errno>`. */
function call<T>(name: string, file: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw new TsrunError(`${name} '${file}': ${codeOf(err)}`, codeOf(err), { cause: err });
  }
}

/** The host's cgroup layout, from /proc/self/mountinfo. */
export function hostLayout(cfs: CgroupFs = hostCgroupFs): CgroupLayout {
  const mounts = parseCgroupMounts(cfs.read('/proc/self/mountinfo'));
  return layoutOf(mounts, (mount) => {
    const file = `${mount}/cgroup.controllers`;
    return cfs.exists(file) ? cfs.read(file).trim().split(/\s+/).filter(Boolean) : [];
  });
}

/** A kernel list file, or `fallback` when the file is missing. */
function readList(cfs: CgroupFs, file: string, fallback: string): string {
  return cfs.exists(file) ? cfs.read(file).trim() : fallback;
}

/** What the file asks that this host cannot give, found before any container starts. */
function checkHost(res: LinuxResources, placements: Placement[], cfs: CgroupFs): void {
  cgroupWrites(res, placements);
  const memory = placements.find((p) => p.controller === 'memory');
  const memsw = `${memory?.mountPoint}/memory.memsw.limit_in_bytes`;
  if (res.memory?.swap !== undefined && memory?.version === 1 && !cfs.exists(memsw)) {
    throw usageError('memory.swap needs swap accounting, which is off (boot with swapaccount=1)');
  }
  const cpus = readList(cfs, '/sys/devices/system/cpu/online', '0');
  if (res.cpu?.cpus !== undefined && !listWithin(res.cpu.cpus, cpus)) {
    throw usageError(`cpu.cpus '${res.cpu.cpus}' names CPUs that are not online (${cpus})`);
  }
  const mems = readList(cfs, '/sys/devices/system/node/online', '0');
  if (res.cpu?.mems !== undefined && !listWithin(res.cpu.mems, mems)) {
    throw usageError(`cpu.mems '${res.cpu.mems}' names memory nodes that are not online (${mems})`);
  }
}

/**
 * Stage 1: reads the --apply-cgroups file and checks it against the host's cgroups. Only root
 * may set cgroups. A failure is one line naming the file.
 */
export function prepareCgroups(file: string, cfs: CgroupFs = hostCgroupFs): LinuxResources {
  if (process.getuid?.() !== 0) throw usageError('--apply-cgroups: only root can apply cgroups');
  const res = loadResourcesFile(file);
  try {
    const placements = placeControllers(neededControllers(res), hostLayout(cfs));
    checkHost(res, placements, cfs);
  } catch (err) {
    throw usageError(`--apply-cgroups '${file}': ${(err as Error).message}`);
  }
  return res;
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The cgroup of one container: a directory `tsrun/<id>` in each hierarchy it uses. */
export class ContainerCgroup {
  /** The directories created, in order. */
  readonly dirs: string[] = [];
  private readonly onExit = () => this.removeSync();

  constructor(
    private readonly containerID: string,
    private readonly cfs: CgroupFs = hostCgroupFs,
  ) {}

  /** Creates the cgroup, writes the limits and moves `pid` (with its threads) into it. */
  apply(res: LinuxResources, pid: number, layout: CgroupLayout = hostLayout(this.cfs)): void {
    const placements = placeControllers(neededControllers(res), layout);
    const dirOf = new Map<string, string>();
    for (const mount of new Set(placements.map((p) => p.mountPoint))) {
      const here = placements.filter((p) => p.mountPoint === mount);
      dirOf.set(mount, this.createDir(mount, here));
    }
    for (const w of cgroupWrites(res, placements)) {
      const dir = dirOf.get(placements.find((p) => p.controller === w.controller)!.mountPoint)!;
      log().debug({ file: `${dir}/${w.file}`, value: w.value }, 'cgroup write');
      call('write', `${dir}/${w.file}`, () => this.cfs.write(`${dir}/${w.file}`, w.value));
    }
    for (const dir of dirOf.values()) {
      call('write', `${dir}/cgroup.procs`, () => this.cfs.write(`${dir}/cgroup.procs`, `${pid}`));
    }
    log().verbose({ dirs: this.dirs, hostPid: pid }, 'cgroup applied');
  }

  /** Makes `<mount>/tsrun/<id>`, with the controllers of `here` usable in it. */
  private createDir(mount: string, here: Placement[]): string {
    const parent = `${mount}/${CGROUP_PARENT}`;
    const dir = `${parent}/${this.containerID}`;
    if (!this.cfs.exists(parent)) this.mkdir(parent, true);
    if (here[0].version === 2) {
      this.enableControllers(mount, here);
      this.enableControllers(parent, here);
    }
    const cpuset = here[0].version === 1 && here.some((p) => p.controller === 'cpuset');
    if (cpuset) this.inheritCpuset(mount, parent);
    if (this.cfs.exists(dir)) {
      throw new TsrunError(
        `cgroup '${dir}' exists: another container has this id, or left it behind`,
        'EEXIST',
      );
    }
    this.mkdir(dir, false);
    if (this.dirs.length === 0) process.on('exit', this.onExit);
    this.dirs.push(dir);
    if (cpuset) this.inheritCpuset(parent, dir);
    return dir;
  }

  private mkdir(dir: string, existsOk: boolean): void {
    try {
      this.cfs.mkdir(dir);
    } catch (err) {
      if (existsOk && codeOf(err) === 'EEXIST') return;
      throw new TsrunError(`mkdir '${dir}': ${codeOf(err)}`, codeOf(err), { cause: err });
    }
  }

  /** cgroup v2: a controller is usable in a child only when its parent enables it. */
  private enableControllers(dir: string, here: Placement[]): void {
    const file = `${dir}/cgroup.subtree_control`;
    const enabled = call('read', file, () => this.cfs.read(file))
      .trim()
      .split(/\s+/);
    for (const { controller } of here) {
      if (!enabled.includes(controller)) {
        call('write', file, () => this.cfs.write(file, `+${controller}`));
      }
    }
  }

  /** cgroup v1: a new cpuset has no CPUs and no memory nodes; it starts with its parent's. */
  private inheritCpuset(from: string, to: string): void {
    for (const name of ['cpuset.cpus', 'cpuset.mems']) {
      const current = call('read', `${to}/${name}`, () => this.cfs.read(`${to}/${name}`));
      if (current.trim() !== '') continue;
      const value = call('read', `${from}/${name}`, () => this.cfs.read(`${from}/${name}`)).trim();
      call('write', `${to}/${name}`, () => this.cfs.write(`${to}/${name}`, value));
    }
  }

  /**
   * Kills what is left in `dir` (processes the payload left behind), then removes it. False
   * while the kernel still counts processes in it (EBUSY).
   */
  private tryRemove(dir: string): boolean {
    for (const pid of this.processesIn(dir)) this.killQuietly(pid);
    try {
      this.cfs.rmdir(dir);
      return true;
    } catch (err) {
      if (codeOf(err) === 'ENOENT') return true;
      if (codeOf(err) === 'EBUSY') return false;
      throw new TsrunError(`rmdir '${dir}': ${codeOf(err)}`, codeOf(err), { cause: err });
    }
  }

  private processesIn(dir: string): number[] {
    const file = `${dir}/cgroup.procs`;
    if (!this.cfs.exists(file)) return [];
    const text = call('read', file, () => this.cfs.read(file));
    return text.split('\n').filter(Boolean).map(Number);
  }

  private killQuietly(pid: number): void {
    try {
      this.cfs.kill(pid);
    } catch {
      // Gone meanwhile.
    }
  }

  private removed(): void {
    process.removeListener('exit', this.onExit);
    log().verbose({ dirs: this.dirs }, 'cgroup removed');
    this.dirs.length = 0;
  }

  private busy(dir: string): TsrunError {
    return new TsrunError(`rmdir '${dir}': EBUSY (processes are still in it)`, 'EBUSY');
  }

  /** Removes the cgroup once its processes are gone, killing those left behind. */
  async remove(): Promise<void> {
    for (const dir of [...this.dirs].reverse()) {
      const deadline = Date.now() + REMOVE_TIMEOUT_MS;
      while (!this.tryRemove(dir)) {
        if (Date.now() > deadline) throw this.busy(dir);
        await sleep(REMOVE_STEP_MS);
      }
    }
    this.removed();
  }

  /** remove() for the exit handler, where nothing asynchronous runs any more. */
  removeSync(): void {
    try {
      for (const dir of [...this.dirs].reverse()) {
        const deadline = Date.now() + REMOVE_TIMEOUT_MS;
        while (!this.tryRemove(dir)) {
          if (Date.now() > deadline) throw this.busy(dir);
          sleepSync(REMOVE_STEP_MS);
        }
      }
      this.removed();
    } catch (err) {
      log().warn({ dirs: this.dirs, err: (err as Error).message }, 'cgroup left behind');
    }
  }
}

/**
 * Removes the cgroups of a container whose master died without its cleanup (SIGKILL): the
 * instance code calls it when it finds the master's state stale. Whatever still runs there is
 * the dead container's and is killed first. Nothing happens for a directory that is not there.
 */
export function removeLeftCgroups(containerID: string, cfs: CgroupFs = hostCgroupFs): void {
  if (!/^[0-9a-f]{8,64}$/.test(containerID)) return;
  const layout = hostLayout(cfs);
  const mounts = new Set([...Object.values(layout.v1), layout.v2?.mountPoint]);
  const cgroup = new ContainerCgroup(containerID, cfs);
  for (const mount of mounts) {
    const dir = `${mount}/${CGROUP_PARENT}/${containerID}`;
    if (mount !== undefined && cfs.exists(dir)) cgroup.dirs.push(dir);
  }
  if (cgroup.dirs.length > 0) cgroup.removeSync();
}
