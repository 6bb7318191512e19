// The serving side of one RPC connection: decode requests, run their handlers one at a time in
// the order they arrived (mounts must not overlap), answer each in that order. Nothing a peer
// sends can crash the serving process: an unknown method, bad arguments or a failing handler get
// an error response; a malformed frame gets an id-0 EPROTO response and the connection is closed.
import type { Socket } from 'node:net';
import { cancelled, ErrorBody, RpcError, toErrorBody, unknownMethod } from './errors';
import { encodeFrame, FrameDecoder, parseRequest, Request, Response } from './protocol';

/** One method: its argument check and what it does. */
export interface MethodSpec<A = any, R = unknown> {
  /** Throws RpcError EINVAL naming the first bad field. */
  validate(args: unknown): asserts args is A;
  /** May throw (or reject with) a system error: it becomes the response's error. */
  handler(args: A): R | Promise<R>;
}

/** Method name -> method. Only own properties count. */
export type MethodTable = Readonly<Record<string, MethodSpec>>;

/** What the call hook sees of each call, once it is answered. */
export interface CallRecord {
  method: string;
  args: Record<string, unknown>;
  ms: number;
  error?: ErrorBody;
}

export interface ServeOptions {
  /** Called after each call (for logs); must not throw. */
  onCall?: (call: CallRecord) => void;
}

/**
 * Serves requests on `conn` until the peer closes it. Resolves once the connection is closed and
 * every request received has been handled; rejects with the RpcError EPROTO after refusing a
 * malformed frame (the connection is closed then too).
 */
export function serve(
  conn: Socket,
  methods: MethodTable,
  options: ServeOptions = {},
): Promise<void> {
  return new Session(conn, methods, options).done;
}

class Session {
  readonly done: Promise<void>;
  private readonly decoder = new FrameDecoder();
  private queue: Promise<void> = Promise.resolve();
  private refused: RpcError | undefined;
  /** Whether the last request answered failed (a chained request after it is not run). */
  private lastFailed = false;

  constructor(
    private readonly conn: Socket,
    private readonly methods: MethodTable,
    private readonly options: ServeOptions,
  ) {
    this.done = new Promise((resolve, reject) => {
      conn.on('close', () => {
        void this.queue.then(() => (this.refused ? reject(this.refused) : resolve()));
      });
    });
    conn.on('data', (chunk: Buffer) => this.receive(chunk));
    // The peer may vanish at any time: the error is followed by 'close', which ends the session.
    conn.on('error', () => undefined);
    conn.on('end', () => this.enqueue(async () => this.finish()));
  }

  private receive(chunk: Buffer): void {
    if (this.refused !== undefined) return;
    this.decoder.push(chunk);
    try {
      for (const message of this.decoder.frames()) {
        const request = parseRequest(message);
        this.enqueue(() => this.answer(request));
      }
    } catch (err) {
      this.refuse(err as RpcError);
    }
  }

  private enqueue(step: () => Promise<void>): void {
    this.queue = this.queue.then(step).catch(() => undefined);
  }

  private refuse(err: RpcError): void {
    this.refused = err;
    this.conn.pause();
    this.enqueue(async () => {
      this.send({ id: 0, error: err.toBody() });
      this.finish();
    });
  }

  private async answer(request: Request): Promise<void> {
    const started = process.hrtime.bigint();
    const response = await this.run(request);
    this.send(response);
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    const record: CallRecord = { method: request.method, args: request.args, ms };
    if ('error' in response) record.error = response.error;
    this.options.onCall?.(record);
  }

  private async run(request: Request): Promise<Response> {
    const response = await this.dispatch(request);
    this.lastFailed = 'error' in response;
    return response;
  }

  private async dispatch({ id, method, args, chain }: Request): Promise<Response> {
    if (chain === true && this.lastFailed) return { id, error: cancelled(method).toBody() };
    const spec = Object.hasOwn(this.methods, method) ? this.methods[method] : undefined;
    if (spec === undefined) return { id, error: unknownMethod(method).toBody() };
    return call(spec, id, method, args);
  }

  /** Writes a response if the connection can still take it. */
  private send(response: Response): void {
    if (this.conn.destroyed || !this.conn.writable) return;
    let frame: Buffer;
    try {
      frame = encodeFrame(response);
    } catch (err) {
      frame = encodeFrame({ id: response.id, error: toErrorBody(err) });
    }
    this.conn.write(frame);
  }

  /** Closes our side once what was written is flushed. */
  private finish(): void {
    if (this.conn.destroyed) return;
    if (!this.conn.writable) {
      this.conn.destroy();
      return;
    }
    this.conn.end(() => this.conn.destroy());
  }
}

async function call(
  spec: MethodSpec,
  id: number,
  method: string,
  args: unknown,
): Promise<Response> {
  try {
    spec.validate(args);
  } catch (err) {
    const error = toErrorBody(err);
    return { id, error: { ...error, message: `${method}: ${error.message}`, op: method } };
  }
  try {
    const result: unknown = await spec.handler(args);
    return { id, result: result === undefined ? null : result };
  } catch (err) {
    return { id, error: toErrorBody(err) };
  }
}
