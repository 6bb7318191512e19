// The master of an instance (`tsrun instance start`): the wrapper starts tsrun-starter detached,
// in a session of its own, with stdout and stderr on the instance's log files, the instance's
// lock on an fd and these variables. Once the payload runs, the master writes the state file and
// tells the wrapper with SIGUSR1; if the start fails, it writes its error to the log and sends
// SIGUSR2. When the instance ends, the master removes the state and lock files (the logs stay).
import * as fs from 'node:fs';
import type { Engine, ContainerProcess } from '../engines';
import type { TsrunEngineConfig } from '../engines/tsrun/config';
import {
  InstancePaths,
  instancePaths,
  processStartTime,
  removeInstanceFiles,
  writeState,
} from '../instances/state';
import * as path from 'node:path';
import { addon } from '../native/addon';

export const INSTANCE_ENV = {
  /** The state file to write once the instance is up. */
  state: 'TSRUN_INSTANCE_STATE',
  /** The wrapper's pid: SIGUSR1 when up, SIGUSR2 when the start failed. */
  notify: 'TSRUN_INSTANCE_NOTIFY',
  /** The fd of the instance's lock, held until this process exits. */
  lockFd: 'TSRUN_INSTANCE_LOCK_FD',
} as const;

let paths: InstancePaths | undefined;
let notifyPid = 0;

/** Takes what the wrapper handed over; a no-op for a run that is not an instance. */
export function initInstance(): void {
  const state = process.env[INSTANCE_ENV.state];
  if (state === undefined) return;
  paths = instancePaths(path.dirname(state), path.basename(state, '.json'));
  notifyPid = Number(process.env[INSTANCE_ENV.notify] ?? 0);
  const lockFd = Number(process.env[INSTANCE_ENV.lockFd] ?? -1);
  // Held by this process alone: no stage, tool or payload it starts gets a copy.
  if (lockFd >= 0) addon().setCloexec(lockFd, true);
  for (const name of Object.values(INSTANCE_ENV)) delete process.env[name];
  // The lock is still held here: no other start of NAME can be using these files.
  process.on('exit', () => {
    if (paths !== undefined) removeInstanceFiles(paths);
  });
}

function notify(signal: 'SIGUSR1' | 'SIGUSR2'): void {
  if (notifyPid <= 0) return;
  try {
    process.kill(notifyPid, signal);
  } catch {
    // The wrapper is gone (killed): the instance stands or falls without it.
  }
  notifyPid = 0;
}

/** The payload runs: writes the state file and tells the wrapper. */
export function instanceStarted(c: ContainerProcess, engine: Engine): void {
  if (paths === undefined) return;
  const cfg = engine.common.engineConfig as TsrunEngineConfig;
  const user = cfg.user;
  const name = cfg.instance?.name ?? path.basename(paths.state, '.json');
  // Tells the masters of a user's instances apart in ps.
  process.title = `tsrun: master instance ${name}`;
  writeState(paths, {
    name,
    masterPid: process.pid,
    pid: c.pid,
    startTime: processStartTime(c.pid) ?? '',
    image: cfg.image,
    started: new Date().toISOString(),
    uid: process.getuid!(),
    user: require('node:os').userInfo().username as string,
    userns: cfg.userns === true,
    fakeroot: cfg.fakeroot === true && user?.uid === 0,
    containerID: engine.common.containerID,
    logs: { out: paths.out, err: paths.err },
  });
  notify('SIGUSR1');
}

/** The start failed: the error is in the log by now. */
export function instanceFailed(): void {
  notify('SIGUSR2');
}

/** Whether this master runs an instance. */
export function isInstance(): boolean {
  return paths !== undefined;
}

export function stateFileExists(): boolean {
  return paths !== undefined && fs.existsSync(paths.state);
}
