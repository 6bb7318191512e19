// tsrun build: makes a SIF file (squashfs partition) from a sandbox directory or another image,
// or unpacks an image into a sandbox directory. Runs on the host, as the user; the tools it runs
// (mksquashfs, unsquashfs, cp) are started through the addon, with their output on the terminal
// (progress and statistics there) and quiet otherwise. An ext3 image is unpacked by the
// unpack-ext3 process (unpack-ext3.ts), which mounts it in namespaces of its own (root only).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fromErrorData, TsrunError, usageError, wrap } from '../common/errors';
import { readMessageSync } from '../common/messages';
import { detectImage, ImageSource } from '../images/detect';
import { refuseImageURI } from './config';
import { FsType } from '../images/sif';
import { PartitionSource, writeSif } from '../images/sif-write';
import { lookPath } from '../engines/tsrun/actions';
import { loadAdminConfig } from '../config/admin';
import { CONTAINER_PATH } from '../engines/tsrun/process';
import { addon, ExecSpec, ExitStatus } from '../native/addon';
import { CLONE, SIGNALS } from '../native/constants';
import { progressBar } from './progress';
import type { UnpackFailure, UnpackRequest } from './unpack-ext3';

const UNPACK_EXT3 = path.join(__dirname, 'unpack-ext3.js');

export interface BuildOptions {
  sandbox?: boolean;
  force?: boolean;
}

/** The tool's path in $PATH, as execvp would find it. */
function which(tool: string): string {
  try {
    if (tool === 'mksquashfs') {
      // The admin's `mksquashfs path` names the directory to take it from.
      const dir = loadAdminConfig().mksquashfsPath;
      if (dir !== '') return lookPath(path.join(dir, tool), '');
    }
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

/** Kills the running tool and waits until it is gone, so that it writes nothing more. */
function stopTool(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
    addon().waitPid(pid);
  } catch {
    // Already gone, or reaped meanwhile by the wait of runChild.
  }
}

function interrupted(name: NodeJS.Signals): void {
  if (inProgress.pid !== 0) stopTool(inProgress.pid);
  for (const p of inProgress.paths) fs.rmSync(p, { recursive: true, force: true });
  process.exit(128 + (os.constants.signals[name] ?? 0));
}

/** Starts `main` (a child of tsrun, in new namespaces for `flags`); throws when it fails. */
async function runChild(name: string, main: ExecSpec, flags = 0): Promise<void> {
  const handle = addon().cloneExec({ flags, joinNs: [], waitForRelease: false, main });
  inProgress.pid = handle.pid;
  try {
    await addon().release(handle);
  } finally {
    const status = await addon().waitPidfd(handle.pidfd);
    inProgress.pid = 0;
    addon().close(handle.pidfd);
    if (status.code !== 0) throw exitError(name, status);
  }
}

function exitError(tool: string, status: ExitStatus): TsrunError {
  const how = status.signal !== null ? `signal ${status.signal}` : `exit code ${status.code}`;
  return new TsrunError(`${tool} failed (${how})`, 'ECHILD');
}

/** Runs a tool with tsrun's stdio and environment; throws when it fails. */
async function runTool(tool: string, args: string[]): Promise<void> {
  const file = which(tool);
  const envp = Object.entries(process.env).map(([k, v]) => `${k}=${v ?? ''}`);
  await runChild(tool, {
    path: file,
    argv: [tool, ...args],
    envp,
    fds: [],
    pdeathSignal: SIGNALS.SIGKILL,
  });
}

const onTerminal = (): boolean => require('node:tty').isatty(1) as boolean;

/**
 * Unpacks an ext3 image (file or SIF partition) by mounting it: debugfs's rdump would lose the
 * setuid, setgid and sticky bits. The unpack-ext3 process mounts it in a mount namespace of its
 * own, on a mount point that is an empty directory on the host, and reports a failure on a pipe.
 */
async function unpackExt3(out: string, src: ImageSource): Promise<void> {
  const what = `unpacking ext3 image '${src.path}'`;
  if (process.geteuid?.() !== 0) {
    throw new TsrunError(`${what}: needs root (it mounts the file system)`, 'EPERM');
  }
  const mountPoint = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'tsrun-unpack-'));
  inProgress.paths.add(mountPoint);
  const [report, reportW] = addon().pipe();
  try {
    const { offset, size } = src;
    const req: UnpackRequest = { image: src.path, offset, size, mountPoint, out, cp: which('cp') };
    const spec: ExecSpec = {
      path: process.execPath,
      argv: [process.execPath, UNPACK_EXT3, JSON.stringify(req)],
      envp: [],
      fds: [{ fd: reportW, target: 3 }],
      pdeathSignal: SIGNALS.SIGKILL,
    };
    // A pid namespace too: once unpack-ext3 (its pid 1) is reaped, cp is gone with it.
    const child = runChild('unpack-ext3', spec, CLONE.NEWNS | CLONE.NEWPID);
    addon().close(reportW);
    await child.catch((err: unknown) => {
      const failure = readMessageSync(report) as UnpackFailure | null;
      throw failure !== null ? fromErrorData(failure.error, what) : wrap(err, what);
    });
  } finally {
    addon().close(report);
    await fs.promises.rm(mountPoint, { recursive: true, force: true });
    inProgress.paths.delete(mountPoint);
  }
}

async function toSandbox(out: string, src: ImageSource): Promise<void> {
  if (src.format === 'sandbox') return runTool('cp', ['-a', '--', src.path, out]);
  if (src.fstype === 'ext3') return unpackExt3(out, src);
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
  return t === s || s.startsWith(`${t}/`) || t.startsWith(`${s}/`);
}

/** Builds `out` from the image `source`; leaves no partial output behind on failure. */
export async function build(out: string, source: string, opts: BuildOptions): Promise<void> {
  refuseImageURI(source);
  const src = detectImage(path.resolve(source));
  const target = path.resolve(out);
  if (overlaps(target, src.path)) {
    throw usageError(`build: '${out}' is, holds or lies inside the source '${source}'`);
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
