// The worker thread (piscina) that copies one partition's data into a SIF file, so that the build's
// event loop stays free (signals, the progress bar) however large the partition is. It reads and
// writes in chunks at explicit offsets, reports each chunk on the MessagePort the task carries, and
// returns a failure as data: an Error's code and syscall would not survive the thread crossing.
//
//   main thread                                  worker
//   CopyRequest (port transferred) ------------> open source, target
//                 <------------ CopyProgress     after each chunk, on the port
//                 <------------ CopyResult       the task's value: copied or failed
import * as fs from 'node:fs';
import type { MessagePort } from 'node:worker_threads';

/** Bytes read and written at a time. */
export const CHUNK = 8 << 20;

/** Main thread -> worker: copy `size` bytes of `source` into `target` at `offset`. */
export interface CopyRequest {
  type: 'copy';
  source: string;
  target: string;
  offset: number;
  size: number;
  port: MessagePort;
}

/** Worker -> main thread, on the request's port: bytes of this request copied so far. */
export interface CopyProgress {
  type: 'progress';
  copied: number;
}

/** A failure, as the fields of Node's system errors. */
export interface CopyFailure {
  message: string;
  code: string;
  syscall?: string;
  path?: string;
}

/** Worker -> main thread, the task's value. */
export type CopyResult =
  { type: 'copied'; copied: number } | { type: 'failed'; error: CopyFailure };

function failure(err: unknown): CopyFailure {
  const e = err as NodeJS.ErrnoException;
  return {
    message: e instanceof Error ? e.message : String(err),
    code: typeof e?.code === 'string' ? e.code : 'EIO',
    ...(e?.syscall !== undefined ? { syscall: e.syscall } : {}),
    ...(e?.path !== undefined ? { path: e.path } : {}),
  };
}

function writeAll(fd: number, buf: Buffer, length: number, position: number): void {
  let done = 0;
  while (done < length) done += fs.writeSync(fd, buf, done, length - done, position + done);
}

function copyChunks(req: CopyRequest, from: number, to: number): number {
  const buf = Buffer.allocUnsafe(Math.min(CHUNK, Math.max(req.size, 1)));
  let copied = 0;
  while (copied < req.size) {
    const n = fs.readSync(from, buf, 0, Math.min(buf.length, req.size - copied), copied);
    if (n === 0) {
      const problem = `'${req.source}' ended after ${copied} of ${req.size} bytes`;
      throw Object.assign(new Error(problem), { code: 'EIO' });
    }
    writeAll(to, buf, n, req.offset + copied);
    copied += n;
    req.port.postMessage({ type: 'progress', copied } satisfies CopyProgress);
  }
  return copied;
}

export default function copy(req: CopyRequest): CopyResult {
  let from = -1;
  let to = -1;
  try {
    from = fs.openSync(req.source, 'r');
    to = fs.openSync(req.target, 'r+');
    return { type: 'copied', copied: copyChunks(req, from, to) };
  } catch (err) {
    return { type: 'failed', error: failure(err) };
  } finally {
    if (from >= 0) fs.closeSync(from);
    if (to >= 0) fs.closeSync(to);
  }
}
