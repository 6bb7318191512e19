// The calling side of an RPC connection (the master). Calls may be pipelined: each gets the next
// id and its promise settles when the response with that id arrives. A failed call rejects with
// an RpcError carrying the server's code, op and path. When the connection closes, every call
// still waiting rejects with ECONNRESET; an id-0 error from the server (it refused the stream)
// rejects them with that error instead.
import * as net from 'node:net';
import { connectionClosed, fromErrorBody, protocolError, RpcError } from './errors';
import { encodeFrame, FrameDecoder, parseResponse, Response } from './protocol';

interface Pending {
  method: string;
  resolve: (result: unknown) => void;
  reject: (err: Error) => void;
}

export class RpcClient {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly decoder = new FrameDecoder();
  /** Set once the connection can no longer carry calls; later calls reject with it. */
  private broken: RpcError | undefined;
  private readonly closed: Promise<void>;

  constructor(private readonly conn: net.Socket) {
    this.closed = new Promise((resolve) => conn.once('close', () => resolve()));
    conn.on('data', (chunk: Buffer) => this.receive(chunk));
    conn.on('error', () => undefined); // 'close' follows and rejects what is pending
    conn.on('close', () => this.fail(connectionClosed()));
  }

  /** A client over an inherited connected socket fd (e.g. one end of a socketpair). */
  static fromFd(fd: number): RpcClient {
    return new RpcClient(new net.Socket({ fd, readable: true, writable: true }));
  }

  /** A client connected to a server listening on a Unix socket path (debug mode). */
  static connect(path: string): Promise<RpcClient> {
    return new Promise((resolve, reject) => {
      const conn = net.connect(path);
      conn.once('error', reject);
      conn.once('connect', () => {
        conn.off('error', reject);
        resolve(new RpcClient(conn));
      });
    });
  }

  /** Calls `method`; resolves with its result or rejects with an RpcError. */
  call<R = unknown>(method: string, args: object, opts: { chain?: boolean } = {}): Promise<R> {
    if (this.broken !== undefined) return Promise.reject(this.broken);
    const id = this.nextId++;
    let frame: Buffer;
    try {
      const request = { id, method, args: args as Record<string, unknown> };
      frame = encodeFrame(opts.chain === true ? { ...request, chain: true } : request);
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise<R>((resolve, reject) => {
      this.pending.set(id, { method, resolve: resolve as (r: unknown) => void, reject });
      this.conn.write(frame);
    });
  }

  /** Number of calls sent and not yet answered. */
  get inFlight(): number {
    return this.pending.size;
  }

  /**
   * Ends the connection (the server answers what it already received, then closes); resolves
   * once it is closed. Calls made after close() reject.
   */
  close(): Promise<void> {
    this.broken ??= connectionClosed();
    if (!this.conn.destroyed) this.conn.end();
    return this.closed;
  }

  private receive(chunk: Buffer): void {
    this.decoder.push(chunk);
    try {
      for (const message of this.decoder.frames()) this.settle(parseResponse(message));
    } catch (err) {
      this.fail(err as RpcError);
      this.conn.destroy();
    }
  }

  private settle(response: Response): void {
    if (response.id === 0 && 'error' in response) {
      this.fail(fromErrorBody(response.error));
      return;
    }
    const call = this.pending.get(response.id);
    if (call === undefined) throw protocolError(`response to unknown request ${response.id}`);
    this.pending.delete(response.id);
    if ('error' in response) call.reject(fromErrorBody(response.error));
    else call.resolve(response.result);
  }

  /** Rejects every pending call; the first cause sticks for later calls. */
  private fail(cause: RpcError): void {
    this.broken ??= cause;
    for (const [id, call] of this.pending) {
      this.pending.delete(id);
      call.reject(cause.code === 'ECONNRESET' ? connectionClosed(call.method) : cause);
    }
  }
}
