// Messages between the starter and its stages (stage 1, stage 2) on a Unix socket: one JSON
// object per line. The stages use the blocking calls (they have nothing else to do); the master
// reads with a non-blocking stream.
import * as fs from 'node:fs';
import type * as net from 'node:net';
import { TsrunError } from './errors';

/** Largest message accepted (configs carry the environment). */
export const MAX_MESSAGE = 4 << 20;

export function writeMessageSync(fd: number, message: unknown): void {
  const data = Buffer.from(`${JSON.stringify(message)}\n`);
  let off = 0;
  while (off < data.length) off += fs.writeSync(fd, data, off);
}

/**
 * Reads one message; null at end of file. It reads until the data ends in a newline: a peer sends
 * one message and then waits for the answer, so no read ever holds the start of a next message.
 */
export function readMessageSync(fd: number): unknown {
  const chunks: Buffer[] = [];
  let size = 0;
  const buf = Buffer.alloc(64 * 1024);
  for (;;) {
    const n = fs.readSync(fd, buf, 0, buf.length, null);
    if (n === 0) break;
    chunks.push(Buffer.from(buf.subarray(0, n)));
    size += n;
    if (size > MAX_MESSAGE) throw new TsrunError('message too large', 'EMSGSIZE');
    if (buf[n - 1] === 0x0a) break;
  }
  if (size === 0) return null;
  return JSON.parse(Buffer.concat(chunks).toString('utf8'));
}

/** Calls `onMessage` for each line that arrives on `sock`, then `onEnd` at end of stream. */
export function readMessages(
  sock: net.Socket,
  onMessage: (m: unknown) => void,
  onEnd: (err?: Error) => void,
): void {
  let pending = '';
  let ended = false;
  const end = (err?: Error) => {
    if (!ended) {
      ended = true;
      onEnd(err);
    }
  };
  sock.setEncoding('utf8');
  sock.on('data', (chunk: string) => {
    pending += chunk;
    if (pending.length > MAX_MESSAGE) return end(new TsrunError('message too large', 'EMSGSIZE'));
    let nl: number;
    while ((nl = pending.indexOf('\n')) >= 0) {
      const line = pending.slice(0, nl);
      pending = pending.slice(nl + 1);
      try {
        onMessage(JSON.parse(line));
      } catch (err) {
        return end(err as Error);
      }
    }
  });
  sock.on('end', () => end());
  sock.on('close', () => end());
  sock.on('error', (err) => end(err));
}
