#!/usr/bin/env node
// The unpack-ext3 process of `tsrun build --sandbox`: cloned by the build (src/cli/build.ts), as
// root, into a mount namespace and a pid namespace of its own, it mounts an ext3 image read-only
// from a loop device and copies it with `cp -a`, which keeps owners, modes (setuid, setgid,
// sticky), xattrs, hard links, symlinks and device nodes. It is pid 1 of its pid namespace, so
// however it ends (done, failed, SIGKILL) the kernel kills cp with it, the mount namespace and
// its mount go, and the autoclear loop device detaches: nothing is left on the host. A failure
// goes to the build as data on fd 3 (one JSON line) before it exits 1.
//
// Usage (by the build only): node unpack-ext3.js '<UnpackRequest as JSON>'
// Debugging: `ps` shows it as 'tsrun: unpack-ext3'.
import { spawn } from 'node:child_process';
import { toErrorData, TsrunError, wrap } from '../common/errors';
import { writeMessageSync } from '../common/messages';
import { addon, SystemError } from '../native/addon';
import { MS } from '../native/constants';

/** The build -> unpack-ext3, on the command line. */
export interface UnpackRequest {
  image: string;
  /** Where the ext3 file system lies in the image, in bytes; size 0: to the end. */
  offset: number;
  size: number;
  /** An empty directory on the host to mount the file system on. */
  mountPoint: string;
  /** The sandbox directory to create; it must not exist. */
  out: string;
  /** cp's absolute path. */
  cp: string;
}

/** unpack-ext3 -> the build, on fd 3, when it fails. */
export interface UnpackFailure {
  type: 'failed';
  error: { message: string; code: string };
}

const REPORT_FD = 3;

function parseRequest(arg: string | undefined): UnpackRequest {
  const req = JSON.parse(arg ?? 'null') as UnpackRequest | null;
  const strings = [req?.image, req?.mountPoint, req?.out, req?.cp];
  const numbers = [req?.offset, req?.size];
  if (
    req === null ||
    !strings.every((s) => typeof s === 'string' && s.startsWith('/')) ||
    !numbers.every((n) => Number.isSafeInteger(n) && (n as number) >= 0)
  ) {
    throw new TsrunError(`bad request ${JSON.stringify(arg)}`, 'EINVAL');
  }
  return req;
}

/** A failed mount of the image, said in the words of this step. */
function mountError(err: unknown): TsrunError {
  const code = (err as SystemError).code;
  if (code === 'EINVAL' || code === 'EUCLEAN' || code === 'EIO' || code === 'EBADMSG') {
    return wrap(err, 'not a sound ext3 file system (damaged?)');
  }
  if (code === 'EROFS') return wrap(err, 'its journal needs recovery (run e2fsck on it)');
  return wrap(err, 'mounting it');
}

/** Mounts the image read-only on the mount point; the mount holds the loop device from then. */
function mountImage(req: UnpackRequest): void {
  const loop = addon().loopAttach(req.image, req.offset, req.size, true, true);
  try {
    const flags = MS.RDONLY | MS.NODEV | MS.NOSUID;
    addon().mount(loop.device, req.mountPoint, 'ext3', flags, null);
  } catch (err) {
    throw mountError(err);
  } finally {
    addon().close(loop.fd);
  }
}

/** Runs cp -a; its messages are kept for the error, so the build prints one line. */
function copyTree(req: UnpackRequest): Promise<void> {
  return new Promise((resolve, reject) => {
    const cp = spawn(req.cp, ['-a', '-T', '--', req.mountPoint, req.out], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: {},
    });
    let messages = '';
    cp.stderr.setEncoding('utf8').on('data', (d: string) => (messages += d));
    cp.on('error', (err) => reject(wrap(err, 'cp')));
    cp.on('close', (code, signal) => {
      if (code === 0) return resolve();
      const first = messages.split('\n')[0] || (signal !== null ? `${signal}` : `exit ${code}`);
      reject(new TsrunError(`cp failed: ${first}`, 'ECHILD'));
    });
  });
}

async function main(): Promise<void> {
  process.title = 'tsrun: unpack-ext3';
  // The report fd must not reach cp.
  addon().setCloexec(REPORT_FD, true);
  try {
    const req = parseRequest(process.argv[2]);

    // A mount made here must not propagate to the host's namespace.
    addon().mount(null, '/', null, MS.REC | MS.PRIVATE, null);

    mountImage(req);

    await copyTree(req);

    addon().umount2(req.mountPoint, 0);
  } catch (err) {
    writeMessageSync(REPORT_FD, {
      type: 'failed',
      error: toErrorData(err),
    } satisfies UnpackFailure);
    process.exit(1);
  }
}

void main();
