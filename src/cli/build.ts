// tsrun build: makes a SIF file (squashfs partition) from a sandbox directory or another image,
// or unpacks an image into a sandbox directory. Runs on the host, as the user; the tools it runs
// (mksquashfs, unsquashfs, cp) are started through the addon, with their output on the terminal
// (progress and statistics there) and quiet otherwise.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { TsrunError, usageError, wrap } from '../common/errors';
import { detectImage, ImageSource } from '../images/detect';
import { FsType } from '../images/sif';
import { PartitionSource, writeSif } from '../images/sif-write';
import { lookPath } from '../engines/tsrun/actions';
import { CONTAINER_PATH } from '../engines/tsrun/process';
import { addon } from '../native/addon';
import { SIGNALS } from '../native/constants';
import { progressBar } from './progress';

export interface BuildOptions {
  sandbox?: boolean;
  force?: boolean;
}

/** The tool's path in $PATH, as execvp would find it. */
function which(tool: string): string {
  try {
    return lookPath(tool, process.env.PATH ?? CONTAINER_PATH);
  } catch (err) {
    throw wrap(err, `build needs ${tool} (Debian's squashfs-tools has mksquashfs and unsquashfs)`);
  }
}

/**
 * What an interrupted build must undo: the tool running now and the paths it is writing. The
 * tools also get SIGKILL should tsrun die without cleaning up (parent-death signal).
 */
const inProgress = { pid: 0, paths: new Set<string>() };

function interrupted(name: NodeJS.Signals): void {
  if (inProgress.pid !== 0) {
    try {
      process.kill(inProgress.pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
  for (const p of inProgress.paths) fs.rmSync(p, { recursive: true, force: true });
  process.exit(128 + (os.constants.signals[name] ?? 0));
}

/** Runs a tool with tsrun's stdio and environment; throws when it fails. */
async function runTool(tool: string, args: string[]): Promise<void> {
  const file = which(tool);
  const envp = Object.entries(process.env).map(([k, v]) => `${k}=${v ?? ''}`);
  const handle = addon().cloneExec({
    flags: 0,
    joinNs: [],
    waitForRelease: false,
    main: { path: file, argv: [tool, ...args], envp, fds: [], pdeathSignal: SIGNALS.SIGKILL },
  });
  inProgress.pid = handle.pid;
  try {
    await addon().release(handle);
  } finally {
    const status = await addon().waitPidfd(handle.pidfd);
    inProgress.pid = 0;
    addon().close(handle.pidfd);
    if (status.code !== 0) {
      const how = status.signal !== null ? `signal ${status.signal}` : `exit code ${status.code}`;
      throw new TsrunError(`${tool} failed (${how})`, 'ECHILD');
    }
  }
}

const onTerminal = (): boolean => require('node:tty').isatty(1) as boolean;

async function toSandbox(out: string, src: ImageSource): Promise<void> {
  if (src.format === 'sandbox') return runTool('cp', ['-a', '--', src.path, out]);
  if (src.fstype !== 'squashfs') {
    // Unpacking ext3 without mounting it (debugfs rdump) loses setuid, setgid and sticky bits;
    // mounting it needs the container machinery: not done yet.
    throw usageError(`build --sandbox from ${src.format} image '${src.path}' is not supported yet`);
  }
  const quiet = onTerminal() ? [] : ['-q', '-n'];
  await runTool('unsquashfs', [...quiet, '-d', out, '-o', String(src.offset), src.path]);
}

/** writeSif, with a progress bar of the data copied when stderr is a terminal. */
async function writeSifShowing(out: string, part: PartitionSource): Promise<void> {
  const bar = progressBar('writing SIF');
  try {
    await writeSif(out, part, [], { onProgress: bar?.update });
  } finally {
    bar?.stop();
  }
}

async function toSif(out: string, src: ImageSource): Promise<void> {
  const name = path.basename(out);
  if (src.format === 'squashfs')
    return writeSifShowing(out, { file: src.path, fsType: FsType.Squash, name });
  if (src.format === 'ext3') {
    return writeSifShowing(out, { file: src.path, fsType: FsType.Ext3, name });
  }
  if (src.format === 'sif') return fs.promises.copyFile(src.path, out);
  const tmp = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'tsrun-build-'));
  inProgress.paths.add(tmp);
  try {
    const squashfs = path.join(tmp, 'rootfs.squashfs');
    const quiet = onTerminal() ? [] : ['-quiet', '-no-progress'];
    await runTool('mksquashfs', [src.path, squashfs, '-noappend', ...quiet]);
    await writeSifShowing(out, { file: squashfs, fsType: FsType.Squash, name });
  } finally {
    await fs.promises.rm(tmp, { recursive: true, force: true });
    inProgress.paths.delete(tmp);
  }
}

/** Whether writing (or replacing) `target` would touch `source`. */
function overlaps(target: string, source: string): boolean {
  const real = (p: string) => (fs.existsSync(p) ? fs.realpathSync(p) : p);
  const t = real(target);
  const s = real(source);
  return t === s || s.startsWith(`${t}/`);
}

/** Builds `out` from the image `source`; leaves no partial output behind on failure. */
export async function build(out: string, source: string, opts: BuildOptions): Promise<void> {
  const src = detectImage(path.resolve(source));
  const target = path.resolve(out);
  if (overlaps(target, src.path)) {
    throw usageError(`build: '${out}' is or holds the source '${source}'`);
  }
  if (fs.existsSync(target)) {
    if (!opts.force) throw usageError(`build: '${out}' exists (use --force to replace it)`);
    fs.rmSync(target, { recursive: true, force: true });
  }
  for (const name of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.once(name, interrupted);
  inProgress.paths.add(target);
  try {
    await (opts.sandbox ? toSandbox(target, src) : toSif(target, src));
    inProgress.paths.delete(target);
  } catch (err) {
    fs.rmSync(target, { recursive: true, force: true });
    throw wrap(err, `build '${out}'`);
  }
}
