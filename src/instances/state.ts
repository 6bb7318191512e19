// Where instances are kept, per user: `~/.tsrun/instances/<host>/` (mode 0700, so that no other
// user can read it) holds NAME.json (the state, written by the instance's master once it is up),
// NAME.lock (locked by the master for the instance's life: the lock, not the state file, says
// whether an instance runs) and logs/NAME.out, logs/NAME.err (the instance's stdout and stderr).
// The home folder is the one /etc/passwd gives the user, not $HOME.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { TsrunError, usageError } from '../common/errors';
import { addon } from '../native/addon';

/** Instance names: letters, digits, '-', '_' and '.', not starting with '.' or '-'. */
export const INSTANCE_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;

export interface InstanceState {
  name: string;
  /** The master: it holds the lock, forwards signals and cleans up when the instance ends. */
  masterPid: number;
  /** The container process: pid 1 of the instance's pid namespace, on the host. */
  pid: number;
  /** Field 22 of /proc/PID/stat of `pid`: tells a reused pid from the instance's. */
  startTime: string;
  image: string;
  /** ISO 8601, UTC. */
  started: string;
  uid: number;
  user: string;
  userns: boolean;
  fakeroot: boolean;
  containerID: string;
  logs: { out: string; err: string };
}

export interface InstancePaths {
  dir: string;
  state: string;
  lock: string;
  out: string;
  err: string;
}

export function checkInstanceName(name: string): void {
  if (!INSTANCE_NAME.test(name)) {
    throw usageError(
      `instance name '${name}' is invalid: use 1 to 128 letters, digits, '-', '_' and '.', not starting with '.' or '-'`,
    );
  }
}

/** The home folder of a user, from the password database. */
export function homeOf(uid: number): string {
  if (uid === process.getuid!()) return os.userInfo().homedir;
  const line = fs
    .readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.split(':')[2] === String(uid));
  const home = line?.split(':')[5];
  if (home === undefined || home === '') throw usageError(`uid ${uid} has no home folder`);
  return home;
}

/** The instances folder of a user (its owner is that user). */
export function instancesDir(uid: number): string {
  return path.join(homeOf(uid), '.tsrun', 'instances', os.hostname());
}

export function instancePaths(dir: string, name: string): InstancePaths {
  return {
    dir,
    state: path.join(dir, `${name}.json`),
    lock: path.join(dir, `${name}.lock`),
    out: path.join(dir, 'logs', `${name}.out`),
    err: path.join(dir, 'logs', `${name}.err`),
  };
}

/** Makes the folders (mode 0700) as the calling user. */
export function makeInstancesDir(dir: string): void {
  fs.mkdirSync(path.join(dir, 'logs'), { recursive: true, mode: 0o700 });
  for (let d = dir; d !== path.dirname(d) && path.basename(d) !== '.tsrun'; d = path.dirname(d)) {
    fs.chmodSync(d, 0o700);
  }
  fs.chmodSync(path.join(dir, 'logs'), 0o700);
}

/**
 * Takes NAME's lock (exclusive, never waiting); returns its fd. The lock file may be removed by
 * the one that held it: after taking the lock, the fd must still be the file at the path, else
 * it starts over on the new file.
 */
export function lockInstance(paths: InstancePaths, name: string): number {
  for (let attempt = 0; attempt < 10; attempt++) {
    const fd = fs.openSync(paths.lock, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o600);
    try {
      addon().flock(fd, true);
    } catch (err) {
      fs.closeSync(fd);
      if ((err as { code?: string }).code === 'EAGAIN') {
        throw new TsrunError(`instance '${name}' already exists (stop it first)`, 'EEXIST');
      }
      throw err;
    }
    if (sameFile(fd, paths.lock)) return fd;
    fs.closeSync(fd);
  }
  throw new TsrunError(`instance '${name}': its lock file keeps changing`, 'EAGAIN');
}

function sameFile(fd: number, file: string): boolean {
  try {
    const a = fs.fstatSync(fd);
    const b = fs.statSync(file);
    return a.ino === b.ino && a.dev === b.dev;
  } catch {
    return false;
  }
}

/** Whether NAME's master holds its lock. */
export function isRunning(paths: InstancePaths): boolean {
  let fd: number;
  try {
    fd = fs.openSync(paths.lock, 'r');
  } catch {
    return false;
  }
  try {
    addon().flock(fd, false);
    return false;
  } catch (err) {
    if ((err as { code?: string }).code === 'EAGAIN') return true;
    throw err;
  } finally {
    fs.closeSync(fd);
  }
}

export function readState(paths: InstancePaths): InstanceState | undefined {
  try {
    return JSON.parse(fs.readFileSync(paths.state, 'utf8')) as InstanceState;
  } catch {
    return undefined;
  }
}

/** Writes the state file whole or not at all: a temporary file, then rename. */
export function writeState(paths: InstancePaths, state: InstanceState): void {
  const tmp = `${paths.state}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
  fs.renameSync(tmp, paths.state);
}

/** Removes the state, lock and empty log files of an instance whose lock is held (or gone). */
export function removeInstanceFiles(paths: InstancePaths): void {
  for (const file of [paths.state, paths.lock]) fs.rmSync(file, { force: true });
  // Logs stay for reading, unless there is nothing in them.
  for (const log of [paths.out, paths.err]) {
    try {
      if (fs.statSync(log).size === 0) fs.rmSync(log, { force: true });
    } catch {
      // Not there.
    }
  }
}

/**
 * Removes what a dead master left (its lock is free): takes the lock first, so that an instance
 * starting under the same name meanwhile is never touched. Returns false when it runs.
 */
export function cleanStale(paths: InstancePaths, name: string): boolean {
  let fd: number;
  try {
    fd = lockInstance(paths, name);
  } catch (err) {
    if ((err as { code?: string }).code === 'EEXIST') return false;
    throw err;
  }
  try {
    // A master killed with SIGKILL ran no cleanup: its --apply-cgroups cgroups (root's) go here.
    const state = readState(paths);
    if (state?.containerID !== undefined && process.getuid!() === 0) {
      const cgroups =
        require('../engines/tsrun/cgroups') as typeof import('../engines/tsrun/cgroups');
      cgroups.removeLeftCgroups(state.containerID);
    }
    removeInstanceFiles(paths);
  } finally {
    fs.closeSync(fd);
  }
  return true;
}

/** Field 22 (start time in clock ticks since boot) of /proc/PID/stat; undefined when gone. */
export function processStartTime(pid: number): string | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: count from its last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

/** The names that have a lock or state file in `dir`. */
export function instanceNames(dir: string): string[] {
  let entries: string[];
  try {
    entries = fs.readdirSync(dir);
  } catch {
    return [];
  }
  const names = new Set<string>();
  for (const entry of entries) {
    const m = /^(.*)\.(json|lock)$/.exec(entry);
    if (m !== null && INSTANCE_NAME.test(m[1])) names.add(m[1]);
  }
  return [...names].sort();
}

/** Shell-style glob (`*`, `?`) to a RegExp for whole names. */
export function globToRegExp(glob: string): RegExp {
  const body = glob
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${body}$`);
}
