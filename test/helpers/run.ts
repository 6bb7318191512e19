// Helpers for the end-to-end tests: run the tsrun CLI as a user would, find the test images, and
// check that a run leaves nothing behind.
import { expect } from 'chai';
import { execFileSync, spawn, spawnSync, SpawnSyncReturns } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

export const ROOT = path.resolve(__dirname, '..', '..', '..');
export const TSRUN = path.join(ROOT, 'bin', 'tsrun');
export const STARTER = path.join(ROOT, 'bin', 'tsrun-starter');
export const BUSYBOX = process.env.TSRUN_TEST_BUSYBOX ?? path.join(ROOT, 'images', 'busybox');
/** The SIF file written by Singularity 3.1, from the project's shared fixtures. */
export const SIF_FIXTURE =
  process.env.TSRUN_TEST_SIF ??
  path.join(ROOT, '..', 'shared', 'fixtures', 'singularity-3.1-busybox.sif');
export const DEBIAN = process.env.TSRUN_TEST_DEBIAN ?? '/var/cache/tsrun-test/debian-bookworm';

export interface Result {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export function tsrun(
  args: string[],
  opts: { input?: string; cwd?: string; env?: NodeJS.ProcessEnv } = {},
): Result {
  const r: SpawnSyncReturns<string> = spawnSync(TSRUN, args, {
    encoding: 'utf8',
    input: opts.input ?? '',
    cwd: opts.cwd ?? '/',
    env: opts.env ?? process.env,
    timeout: 60000,
  });
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

/** Starts tsrun in the background; resolves with its result when it exits. */
export function tsrunAsync(
  args: string[],
  onStdout?: (text: string, pid: number) => void,
  env: NodeJS.ProcessEnv = process.env,
): { pid: number; done: Promise<Result>; stdout: () => string } {
  const child = spawn(TSRUN, args, { cwd: '/', env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    stdout += d;
    onStdout?.(stdout, child.pid!);
  });
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const done = new Promise<Result>((resolve) =>
    child.on('close', (status, signal) => resolve({ status, signal, stdout, stderr })),
  );
  return { pid: child.pid!, done, stdout: () => stdout };
}

export function hostMounts(): string[] {
  return fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ').slice(3, 5).join(' '))
    .sort();
}

/** Processes whose command line names a tsrun stage or entry script. */
export function tsrunProcesses(): string[] {
  const out: string[] = [];
  for (const pid of fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
      if (/tsrun: |dist\/src\/(stage1|stage2|rpc|master)\//.test(cmd)) out.push(`${pid} ${cmd}`);
    } catch {
      // Gone meanwhile.
    }
  }
  return out;
}

/**
 * Registers hooks that check, around each test of the suite, that the host's mount table is as
 * before and that no tsrun process is left.
 */
export function expectNothingLeftBehind(): void {
  let before: string[] = [];
  beforeEach(() => {
    before = hostMounts();
  });
  afterEach(async () => {
    // A stage killed by its parent-death signal may take a moment to be gone.
    await waitFor(() => tsrunProcesses().length === 0, 2000).catch(() => undefined);
    expect(tsrunProcesses(), 'tsrun processes after the run').to.deep.equal([]);
    expect(hostMounts(), 'host mounts after the run').to.deep.equal(before);
  });
}

/** Skips the suite when `image` is missing, saying what to run. */
export function requireImage(ctx: Mocha.Context, image: string, how: string): void {
  if (!fs.existsSync(path.join(image, 'bin'))) {
    console.log(`      skipped: image ${image} is missing (${how})`);
    ctx.skip();
  }
}

export function waitFor(cond: () => boolean, ms: number): Promise<void> {
  const start = Date.now();
  return new Promise((resolve, reject) => {
    const tick = () => {
      if (cond()) return resolve();
      if (Date.now() - start > ms) return reject(new Error('timed out'));
      setTimeout(tick, 20);
    };
    tick();
  });
}

/**
 * The environment of a run under the shipped tsrun.conf without its `bind path` lines: with no
 * mount point to add, the image's own mount is the container's root, as `mount` shows it.
 */
export function withoutAdminBinds(): NodeJS.ProcessEnv {
  const file = path.join(require('node:os').tmpdir(), `tsrun-nobinds-${process.pid}.conf`);
  const shipped = fs.readFileSync(path.join(ROOT, 'etc', 'tsrun.conf'), 'utf8');
  const text = shipped
    .split('\n')
    .filter((l) => !/^\s*bind path\s*=/.test(l))
    .join('\n');
  fs.writeFileSync(file, text, { mode: 0o644 });
  process.once('exit', () => fs.rmSync(file, { force: true }));
  return { ...process.env, TSRUN_CONF: file };
}

/**
 * Makes sure /dev/loop0 is busy for the test: attaches `file` to it read-only when it is free.
 * Returns what undoes that. With loop0 busy, `max loop devices = 1` leaves no device to take.
 */
export function holdLoop0(file: string): () => void {
  const r = spawnSync('losetup', ['-r', '/dev/loop0', file], { encoding: 'utf8' });
  if (r.status === 0) return () => spawnSync('losetup', ['-d', '/dev/loop0']);
  const busy = spawnSync('losetup', ['/dev/loop0'], { encoding: 'utf8' }).status === 0;
  if (!busy) throw new Error(`cannot hold /dev/loop0: ${r.stderr}`);
  return () => undefined;
}

/** The busybox image as a squashfs file and as an ext3 file (64 MiB), made in `dir`. */
export function busyboxImageFiles(dir: string): { squashfs: string; ext3: string } {
  const squashfs = path.join(dir, 'busybox.sqfs');
  execFileSync('mksquashfs', [BUSYBOX, squashfs, '-noappend', '-quiet'], { stdio: 'ignore' });
  const ext3 = path.join(dir, 'busybox.ext3');
  fs.writeFileSync(ext3, '');
  fs.truncateSync(ext3, 64 << 20);
  execFileSync('mkfs.ext3', ['-q', '-F', '-d', BUSYBOX, ext3], { stdio: 'ignore' });
  return { squashfs, ext3 };
}

/** Registers hooks that check that each test of the suite leaves the loop devices as they were. */
export function expectNoNewLoopDevices(): void {
  const loops = () => execFileSync('losetup', ['-a'], { encoding: 'utf8' });
  let before = '';
  beforeEach(() => (before = loops()));
  afterEach(() => expect(loops(), 'loop devices').to.equal(before));
}

/** The container cgroups under any hierarchy's tsrun/ folder (v1 and v2 alike). */
export function leftCgroups(): string[] {
  const top = '/sys/fs/cgroup';
  const roots = [top, ...fs.readdirSync(top).map((d) => `${top}/${d}`)];
  return roots
    .map((root) => `${root}/tsrun`)
    .filter((dir) => fs.existsSync(dir))
    .flatMap((dir) =>
      fs
        .readdirSync(dir, { withFileTypes: true })
        .filter((e) => e.isDirectory())
        .map((e) => `${dir}/${e.name}`),
    );
}

/** The parent pid of `pid`, from /proc; 0 when it is gone. */
export function parentOf(pid: number): number {
  try {
    return Number(/^PPid:\s*(\d+)$/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);
  } catch {
    return 0;
  }
}
