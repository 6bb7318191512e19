// Helpers of the addon tests: running a clone to its end with its output, and running code on a
// worker thread (where per-thread calls such as unshare, setns or setresuid cannot disturb mocha).
import { expect } from 'chai';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import {
  addon,
  Addon,
  CloneHandle,
  CloneSpec,
  ExecSpec,
  ExitStatus,
  FdPlacement,
  SystemError,
} from '../../../src/native/addon';

export const native: Addon = addon();
export const PATH = 'PATH=/usr/sbin:/usr/bin:/sbin:/bin';
/** The compiled addon.ts, for code that runs in another thread or process. */
export const addonModule = path.resolve(__dirname, '..', '..', '..', 'src', 'native', 'addon.js');

/** Skips the running test, saying why, unless this process runs as root. */
export function requireRoot(ctx: Mocha.Context): void {
  if (process.getuid?.() !== 0) {
    console.warn(`    skipped '${ctx.test?.title}': needs root`);
    ctx.skip();
  }
}

/** The error `fn` throws; fails when it throws none. */
export function caught(fn: () => unknown): SystemError {
  try {
    fn();
  } catch (err) {
    return err as SystemError;
  }
  throw new Error('expected an error');
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Checks after the suite that it left no mount and no child process behind, and removes its
 * scratch directory. Returns a getter of that directory (made before the first test).
 */
export function leavesNothingBehind(): () => string {
  let mountinfo = '';
  let scratch = '';
  before(function () {
    mountinfo = fs.readFileSync('/proc/self/mountinfo', 'utf8');
    scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-addon-'));
  });
  after(function () {
    fs.rmSync(scratch, { recursive: true, force: true });
    expect(fs.readFileSync('/proc/self/mountinfo', 'utf8')).to.equal(mountinfo);
    expect(childrenOfThisProcess()).to.deep.equal([]);
  });
  return () => scratch;
}

/** An ExecSpec running `script` with /bin/sh. */
export function sh(
  script: string,
  fds: FdPlacement[] = [],
  extra: Partial<ExecSpec> = {},
): ExecSpec {
  return { path: '/bin/sh', argv: ['sh', '-c', script], envp: [PATH], fds, ...extra };
}

/** Waits for the process behind the handle and closes its pidfd. */
export async function finish(handle: CloneHandle): Promise<ExitStatus> {
  try {
    return await native.waitPidfd(handle.pidfd);
  } finally {
    native.close(handle.pidfd);
  }
}

export interface Run {
  status: ExitStatus;
  output: string; // what the processes wrote on the pipe they were given
}

/**
 * Clones with `spec(out)`, where `out` is the write end of a pipe the processes may place, releases
 * the clone, waits for it and reads the pipe to its end. `handOver` are fds of this process that
 * only the clone keeps: they are closed here once it exists.
 */
export async function run(spec: (out: number) => CloneSpec, handOver: number[] = []): Promise<Run> {
  const [readEnd, writeEnd] = native.pipe();
  try {
    let handle: CloneHandle;
    try {
      handle = native.cloneExec(spec(writeEnd));
    } finally {
      for (const fd of [writeEnd, ...handOver]) native.close(fd);
    }
    const released = native.release(handle).catch((err: unknown) => err);
    const status = await finish(handle);
    const failure = await released;
    if (failure !== undefined) throw failure;
    return { status, output: fs.readFileSync(readEnd, 'utf8') };
  } finally {
    native.close(readEnd);
  }
}

/** Runs a plain (no namespace) clone of `main` and returns its status and output. */
export function runMain(main: (out: number) => ExecSpec): Promise<Run> {
  return run((out) => ({ flags: 0, joinNs: [], waitForRelease: false, main: main(out) }));
}

type WorkerBody<D, T> = (
  native: Addon,
  fs: typeof import('node:fs'),
  data: D,
  post: (event: unknown) => void,
) => T;

/**
 * Runs `body` on a new worker thread and resolves with what it returns once the thread has ended
 * (with it, any namespace only that thread was in). `body` is sent as source: it may use only its
 * parameters. Values it passes to `post` reach `onEvent`.
 */
export function inWorker<D, T>(
  body: WorkerBody<D, T>,
  data: D,
  onEvent: (event: unknown) => void = () => undefined,
): Promise<T> {
  const code = `
    const { parentPort, workerData } = require('node:worker_threads');
    const native = require(workerData.addonModule).addon();
    const post = (event) => parentPort.postMessage({ event });
    try {
      const result = (${body.toString()})(native, require('node:fs'), workerData.data, post);
      parentPort.postMessage({ result });
    } catch (err) {
      const { message, code, syscall } = err;
      parentPort.postMessage({ error: { message, code, syscall } });
    }`;
  return new Promise((resolve, reject) => {
    const worker = new Worker(code, { eval: true, workerData: { addonModule, data } });
    let outcome: { result?: T; error?: { message: string } } | undefined;
    worker.on('message', (message: { event?: unknown } & typeof outcome) => {
      if (message && 'event' in message) onEvent(message.event);
      else outcome = message;
    });
    worker.on('error', reject);
    worker.on('exit', () => {
      if (outcome?.error) reject(Object.assign(new Error(outcome.error.message), outcome.error));
      else if (outcome) resolve(outcome.result as T);
      else reject(new Error('worker ended without a result'));
    });
  });
}

/** Lines of a /proc status file as a map: 'CapEff' -> '000001ffffffffff'. */
export function procStatus(file: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    const colon = line.indexOf(':');
    if (colon > 0) fields.set(line.slice(0, colon), line.slice(colon + 1).trim());
  }
  return fields;
}

/** The children of every thread of this process. */
export function childrenOfThisProcess(): string[] {
  return fs
    .readdirSync('/proc/self/task')
    .flatMap((tid) =>
      fs.readFileSync(`/proc/self/task/${tid}/children`, 'utf8').split(' ').filter(Boolean),
    );
}
