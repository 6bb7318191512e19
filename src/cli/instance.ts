// `tsrun instance start|list|stop`, and the engine config of `exec|run|shell instance://NAME`.
// Instances are per user (see src/instances/state.ts); root may name another user's with --user.
// Runs on the host, in the wrapper.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Command } from 'commander';
import { TsrunError, usageError } from '../common/errors';
import type { CommonConfig } from '../engines/config';
import type { Action, TsrunEngineConfig } from '../engines/tsrun/config';
import {
  checkInstanceName,
  cleanStale,
  globToRegExp,
  InstanceState,
  instanceNames,
  instancePaths,
  instancesDir,
  isRunning,
  lockInstance,
  makeInstancesDir,
  processStartTime,
  readState,
} from '../instances/state';
import { INSTANCE_ENV } from '../master/instance';
import { buildEngineConfig, ContainerOptions } from './config';

export const INSTANCE_URI = 'instance://';

const MASTER_MAIN = path.join(__dirname, '..', 'master', 'main.js');

/** The uid whose instances a command acts on: the caller's, or --user's for root. */
function ownerUid(user: string | undefined, what = '--user'): number {
  const self = process.getuid!();
  if (user === undefined) return self;
  const line = fs
    .readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.split(':')[0] === user || (/^\d+$/.test(user) && l.split(':')[2] === user));
  if (line === undefined) throw usageError(`${what} '${user}': no such user`);
  const uid = Number(line.split(':')[2]);
  if (uid !== self && self !== 0)
    throw usageError(`${what}: only root may name another user's instances`);
  return uid;
}

/** The state of a running instance, or undefined (a stale one is cleaned up on the way). */
function runningState(dir: string, name: string): InstanceState | undefined {
  const paths = instancePaths(dir, name);
  if (!isRunning(paths)) {
    cleanStale(paths, name);
    return undefined;
  }
  const state = readState(paths);
  // Locked but no state yet: the instance is starting.
  if (state === undefined || processStartTime(state.pid) !== state.startTime) return undefined;
  return state;
}

// -- start -------------------------------------------------------------------------------------

/** Starts the master detached and returns once the instance is up, or fails with its error. */
export async function startInstance(
  image: string,
  name: string,
  args: string[],
  opts: ContainerOptions,
): Promise<void> {
  checkInstanceName(name);
  if (image.startsWith(INSTANCE_URI)) throw usageError(`'${image}': an instance runs an image`);
  if (opts.init === false)
    throw usageError('--no-init: an instance always has tsrun-init as pid 1');
  const config = buildEngineConfig('start', image, args, { ...opts, pid: true, ipc: true });
  (config.engineConfig as TsrunEngineConfig).instance = { name };
  const dir = instancesDir(process.getuid!());
  makeInstancesDir(dir);
  const paths = instancePaths(dir, name);
  const lockFd = lockInstance(paths, name);
  // The lock is ours: whatever state file is there is a dead master's.
  fs.rmSync(paths.state, { force: true });
  const out = fs.openSync(paths.out, 'w', 0o600);
  const err = fs.openSync(paths.err, 'w', 0o600);
  let outcome: 'up' | 'failed' | undefined;
  let wake: () => void = () => {};
  const waiting = new Promise<void>((resolve) => (wake = resolve));
  process.on('SIGUSR1', () => ((outcome ??= 'up'), wake()));
  process.on('SIGUSR2', () => ((outcome ??= 'failed'), wake()));
  // Ctrl-C (or a kill) while the instance comes up: it is stopped once up, not left behind.
  let interrupted: NodeJS.Signals | undefined;
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(signal, () => (interrupted ??= signal));
  }
  const master = spawn(process.execPath, [MASTER_MAIN], {
    detached: true,
    stdio: ['ignore', out, err, 'pipe', lockFd],
    env: {
      ...process.env,
      TSRUN_CONFIG_FD: '3',
      [INSTANCE_ENV.lockFd]: '4',
      [INSTANCE_ENV.state]: paths.state,
      [INSTANCE_ENV.notify]: String(process.pid),
    },
  });
  const exited = new Promise<void>((resolve) =>
    master.on('exit', () => {
      outcome ??= 'failed';
      wake();
      resolve();
    }),
  );
  const configPipe = master.stdio[3] as NodeJS.WritableStream;
  configPipe.end(JSON.stringify(config));
  for (const fd of [out, err, lockFd]) fs.closeSync(fd);
  await waiting;
  if (outcome === 'up' && interrupted !== undefined) {
    // The master forwards SIGTERM to the instance's init and cleans up once it has ended.
    kill(master.pid!, 'SIGTERM');
    const timer = setTimeout(() => kill(master.pid!, 'SIGKILL'), 10000);
    await exited;
    clearTimeout(timer);
    throw new TsrunError(`instance '${name}' stopped: ${interrupted} while it started`, 'EINTR', {
      exitCode: 128 + signals()[interrupted],
    });
  }
  if (outcome === 'up') {
    master.unref();
    return;
  }
  // The master said it failed, or died: give its error text, then its exit.
  await exited;
  const text = fs.existsSync(paths.err) ? fs.readFileSync(paths.err, 'utf8') : '';
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  // The master's fatal line starts with 'tsrun: '; warnings and debug records around it stay in
  // the log, which the message names when there is more to read there.
  const fatal = lines.filter((l) => l.startsWith('tsrun: ')).pop() ?? lines.at(-1);
  const more = lines.length > 1 ? ` (log: ${paths.err})` : '';
  throw new TsrunError(
    `instance '${name}' failed to start${fatal === undefined ? '' : `: ${fatal.replace(/^tsrun: /, '')}`}${more}`,
    'ECHILD',
  );
}

// -- list --------------------------------------------------------------------------------------

interface ListFlags {
  json?: boolean;
  logs?: boolean;
  user?: string;
}

function listInstances(glob: string | undefined, flags: ListFlags): void {
  const dir = instancesDir(ownerUid(flags.user));
  const match = globToRegExp(glob ?? '*');
  const states = instanceNames(dir)
    .filter((n) => match.test(n))
    .map((n) => runningState(dir, n))
    .filter((s): s is InstanceState => s !== undefined);
  if (flags.json === true) {
    const instances = states.map((s) => ({
      instance: s.name,
      pid: s.pid,
      img: s.image,
      started: s.started,
      user: s.user,
      userns: s.userns,
      logOutPath: s.logs.out,
      logErrPath: s.logs.err,
    }));
    fs.writeSync(1, `${JSON.stringify({ instances }, null, 2)}\n`);
    return;
  }
  const logs = flags.logs === true;
  const rows = [['INSTANCE NAME', 'PID', 'STARTED', logs ? 'LOGS' : 'IMAGE']];
  for (const s of states) {
    const started = s.started.replace('T', ' ').replace(/\.\d+Z$/, 'Z');
    rows.push([s.name, String(s.pid), started, logs ? `${s.logs.out} ${s.logs.err}` : s.image]);
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  const text = rows.map((r) => r.map((c, i) => (i < 3 ? c.padEnd(widths[i]) : c)).join('  '));
  fs.writeSync(1, `${text.join('\n')}\n`);
}

// -- stop --------------------------------------------------------------------------------------

interface StopFlags {
  all?: boolean;
  force?: boolean;
  signal?: string;
  timeout?: string;
  user?: string;
}

function signalNumber(spec: string): number {
  if (/^\d+$/.test(spec) && Number(spec) > 0 && Number(spec) < 65) return Number(spec);
  const name = spec.toUpperCase().startsWith('SIG')
    ? spec.toUpperCase()
    : `SIG${spec.toUpperCase()}`;
  if (signals()[name] === undefined) throw usageError(`--signal '${spec}': unknown signal`);
  return signals()[name];
}

/** The signal numbers, loaded when a command needs them. */
function signals(): Record<string, number> {
  return (require('../native/constants') as typeof import('../native/constants')).SIGNALS;
}

function kill(pid: number, signal: NodeJS.Signals | number): void {
  try {
    process.kill(pid, signal);
  } catch {
    // Gone already.
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Waits until the master lets go of the lock (it has cleaned up), at most `ms`. */
async function waitGone(dir: string, name: string, ms: number): Promise<boolean> {
  const paths = instancePaths(dir, name);
  const deadline = Date.now() + ms;
  for (;;) {
    if (!isRunning(paths)) return true;
    if (Date.now() >= deadline) return false;
    await sleep(25);
  }
}

/** How long a stop waits for an instance that is starting to come up. */
const STARTING_MS = 30000;

/** An instance that holds its lock but has no state yet is starting: waits until it is up. */
async function startedState(dir: string, name: string): Promise<InstanceState | undefined> {
  const paths = instancePaths(dir, name);
  const deadline = Date.now() + STARTING_MS;
  while (isRunning(paths) && Date.now() < deadline) {
    await sleep(25);
    const state = runningState(dir, name);
    if (state !== undefined) return state;
  }
  return undefined;
}

async function stopOne(
  dir: string,
  s: InstanceState,
  flags: StopFlags,
  signal: number,
): Promise<void> {
  const timeout = Number(flags.timeout ?? 10) * 1000;
  // SIGKILL to the master would skip its cleanup: to pid 1 it ends the instance as -F does.
  if (flags.force === true || signal === signals().SIGKILL) {
    kill(s.pid, 'SIGKILL');
  } else {
    // The master forwards it to tsrun-init, which sends it to every process of the instance.
    kill(s.masterPid, signal);
  }
  if (await waitGone(dir, s.name, flags.force === true ? 10000 : timeout)) return;
  // Still there after the timeout: SIGKILL to pid 1 ends every process of the namespace.
  if (processStartTime(s.pid) === s.startTime) kill(s.pid, 'SIGKILL');
  if (await waitGone(dir, s.name, 5000)) return;
  kill(s.masterPid, 'SIGKILL');
  if (!(await waitGone(dir, s.name, 5000))) {
    throw new TsrunError(`instance '${s.name}' did not stop`, 'ETIMEDOUT');
  }
  cleanStale(instancePaths(dir, s.name), s.name);
}

async function stopInstances(names: string[], flags: StopFlags): Promise<void> {
  const signal = signalNumber(flags.signal ?? 'SIGTERM');
  if (signal === signals().SIGSTOP) {
    throw usageError(`--signal ${flags.signal}: it would freeze the instance, not stop it`);
  }
  if (flags.timeout !== undefined && !/^\d+(\.\d+)?$/.test(flags.timeout)) {
    throw usageError(`--timeout '${flags.timeout}': expected seconds`);
  }
  if (flags.all === true && names.length > 0)
    throw usageError('stop: give names or --all, not both');
  if (flags.all !== true && names.length === 0)
    throw usageError('stop: name an instance, or give --all');
  const dir = instancesDir(ownerUid(flags.user));
  const known = instanceNames(dir);
  const targets = new Map<string, InstanceState>();
  const missing: string[] = [];
  for (const glob of flags.all === true ? ['*'] : names) {
    const match = globToRegExp(glob);
    const found: InstanceState[] = [];
    for (const n of known.filter((k) => match.test(k))) {
      const s = runningState(dir, n) ?? (await startedState(dir, n));
      if (s !== undefined) found.push(s);
    }
    if (found.length === 0 && flags.all !== true) missing.push(glob);
    for (const s of found) targets.set(s.name, s);
  }
  // The instances that were found stop; a name that was not is the command's error.
  await Promise.all([...targets.values()].map((s) => stopOne(dir, s, flags, signal)));
  if (missing.length > 0) {
    const quoted = missing.map((m) => `'${m}'`).join(', ');
    throw usageError(`no instance named ${quoted} is running`);
  }
}

// -- join --------------------------------------------------------------------------------------

/** Flags that would change the container: an instance's container is already made. */
const NOT_FOR_JOIN: [keyof ContainerOptions, string][] = [
  ['bind', '--bind'],
  ['writable', '--writable'],
  ['writableTmpfs', '--writable-tmpfs'],
  ['overlay', '--overlay'],
  ['contain', '--contain'],
  ['containall', '--containall'],
  ['workdir', '--workdir'],
  ['scratch', '--scratch'],
  ['dns', '--dns'],
  ['net', '--net'],
  ['pid', '--pid'],
  ['ipc', '--ipc'],
  ['uts', '--uts'],
  ['hostname', '--hostname'],
  ['userns', '--userns'],
  ['fakeroot', '--fakeroot'],
  ['applyCgroups', '--apply-cgroups'],
];

/** The engine config that joins the instance of `uri` (instance://NAME). */
export function joinConfig(
  action: Action,
  uri: string,
  args: string[],
  opts: ContainerOptions,
): CommonConfig {
  // instance://NAME, or instance://USER/NAME for root: another user's instance.
  const spec = uri.slice(INSTANCE_URI.length);
  const slash = spec.indexOf('/');
  const name = slash < 0 ? spec : spec.slice(slash + 1);
  checkInstanceName(name);
  const owner = slash < 0 ? process.getuid!() : ownerUid(spec.slice(0, slash), uri);
  for (const [key, flag] of NOT_FOR_JOIN) {
    if (opts[key] !== undefined && opts[key] !== false) {
      throw usageError(`${flag} cannot be used with ${uri}: the instance's container is made`);
    }
  }
  const home = typeof opts.home === 'string' ? '--home' : opts.home === false ? '--no-home' : '';
  if (home !== '') {
    throw usageError(`${home} cannot be used with ${uri}: the instance's home is mounted`);
  }
  if (opts.init === false) {
    throw usageError(`--no-init cannot be used with ${uri}: the instance's init is pid 1`);
  }
  const dir = instancesDir(owner);
  const state = runningState(dir, name);
  if (state === undefined) throw usageError(`no instance named '${spec}' is running`);
  const config = buildEngineConfig(action, state.image, args, opts);
  const cfg = config.engineConfig as TsrunEngineConfig;
  cfg.join = { name, pid: state.pid, startTime: state.startTime, uid: state.uid };
  cfg.userns = state.userns;
  cfg.fakeroot = state.fakeroot;
  return config;
}

// -- commands ----------------------------------------------------------------------------------

export function addInstanceCommand(
  program: Command,
  containerCommand: (parent: Command, name: string, summary: string) => Command,
): void {
  const instance = program
    .command('instance')
    .description('start, list and stop instances: containers that run in the background');
  containerCommand(instance, 'start', 'start an instance of an image: its startscript runs')
    .usage('[options] IMAGE NAME [ARGS...]')
    .argument('<image>')
    .argument('<name>')
    .argument('[args...]')
    .action((image: string, name: string, args: string[], opts: ContainerOptions) =>
      startInstance(image, name, args, opts).then(() => process.exit(0)),
    );
  instance
    .command('list')
    .description('list the running instances (all, or those whose name matches NAME-GLOB)')
    .usage('[options] [NAME-GLOB]')
    .option('--json', 'print JSON (with the log paths)')
    .option('--logs', 'print the paths of the log files instead of the image')
    .option('-u, --user <user>', "list another user's instances (root)")
    .argument('[glob]')
    .action((glob: string | undefined, flags: ListFlags) => listInstances(glob, flags));
  instance
    .command('stop')
    .description('stop instances: a signal, then SIGKILL after the timeout')
    .usage('[options] [NAME...]')
    .option('-a, --all', 'stop every instance')
    .option('-F, --force', 'SIGKILL at once')
    .option('-s, --signal <signal>', 'the signal to send first (default SIGTERM)')
    .option('-t, --timeout <seconds>', 'seconds to wait before SIGKILL (default 10)')
    .option('-u, --user <user>', "stop another user's instances (root)")
    .argument('[names...]')
    .action((names: string[], flags: StopFlags) => stopInstances(names, flags));
  for (const cmd of instance.commands) cmd.exitOverride();
}
