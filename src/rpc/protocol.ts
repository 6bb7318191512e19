// The wire format between the master (client) and the RPC server.
//
//   frame    = length body              length: 4 bytes, big-endian, 1 .. MAX_FRAME
//   body     = msgpack(message)
//   master -> server   Request  {id, method, args}        id >= 1, several may be in flight
//   server -> master   Response {id, result}               answers in the order of the requests
//                      Response {id, error: ErrorBody}     id 0: the stream itself was refused
//                                                          (malformed frame); the server closes
import { Packr, Unpackr } from 'msgpackr/index-no-eval';
import { ErrorBody, frameTooLarge, protocolError } from './errors';

/** Largest body accepted or sent: larger frames are refused with EPROTO (received) or EMSGSIZE. */
export const MAX_FRAME = 8 * 1024 * 1024;
const HEADER = 4;

export interface Request {
  id: number;
  method: string;
  args: Record<string, unknown>;
  /**
   * Run only if the request before it on this connection succeeded; otherwise it is answered
   * with ECANCELED unrun. Lets a client pipeline a sequence of steps that depend on each other
   * (mkdir below a mount that failed must not land on the host).
   */
  chain?: boolean;
}

export type Response = { id: number; result: unknown } | { id: number; error: ErrorBody };

// Plain msgpack: no record extension, so any msgpack peer can speak the protocol.
const packr = new Packr({ useRecords: false, moreTypes: false });
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true });

/** One message as a whole frame. Throws RpcError EMSGSIZE when it is over MAX_FRAME. */
export function encodeFrame(message: Request | Response): Buffer {
  const body = packr.pack(message);
  if (body.length > MAX_FRAME) throw frameTooLarge(body.length, MAX_FRAME);
  const frame = Buffer.allocUnsafe(HEADER + body.length);
  frame.writeUInt32BE(body.length, 0);
  body.copy(frame, HEADER);
  return frame;
}

function decodeBody(body: Buffer): unknown {
  try {
    return unpackr.unpack(body);
  } catch (err) {
    throw protocolError(`malformed msgpack body (${(err as Error).message})`);
  }
}

/**
 * Cuts a byte stream into messages. push() the chunks as they come, then iterate frames() for
 * the messages they completed. A malformed frame makes frames() throw RpcError EPROTO, after
 * yielding the whole messages before it; the decoder then stays failed.
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private failure: Error | undefined;

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
  }

  /** Bytes received that are not yet part of a whole message. */
  get pending(): number {
    return this.buffered;
  }

  *frames(): Generator<unknown, void, void> {
    for (;;) {
      if (this.failure !== undefined) throw this.failure;
      const body = this.nextBody();
      if (body === undefined) return;
      let message: unknown;
      try {
        message = decodeBody(body);
      } catch (err) {
        this.failure = err as Error;
        throw err;
      }
      yield message;
    }
  }

  private nextBody(): Buffer | undefined {
    if (this.buffered < HEADER) return undefined;
    const length = this.peekHeader().readUInt32BE(0);
    if (length === 0 || length > MAX_FRAME) {
      this.failure = protocolError(`frame length ${length} is not within 1..${MAX_FRAME}`);
      throw this.failure;
    }
    if (this.buffered < HEADER + length) return undefined;
    this.take(HEADER);
    return this.take(length);
  }

  private peekHeader(): Buffer {
    const first = this.chunks[0];
    if (first.length >= HEADER) return first;
    return Buffer.concat(this.chunks, HEADER);
  }

  /** Removes and returns the first `n` buffered bytes (copying only across chunks). */
  private take(n: number): Buffer {
    const parts: Buffer[] = [];
    let need = n;
    while (need > 0) {
      const first = this.chunks[0];
      if (first.length <= need) {
        parts.push(first);
        this.chunks.shift();
        need -= first.length;
      } else {
        parts.push(first.subarray(0, need));
        this.chunks[0] = first.subarray(need);
        need = 0;
      }
    }
    this.buffered -= n;
    return parts.length === 1 ? parts[0] : Buffer.concat(parts, n);
  }
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function isId(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0;
}

/** Checks that a decoded message is a Request; throws RpcError EPROTO if not. */
export function parseRequest(message: unknown): Request {
  if (!isPlainObject(message)) throw protocolError('request is not a map');
  const { id, method, args, chain } = message;
  if (!isId(id) || id === 0) throw protocolError('request id is not a positive integer');
  if (typeof method !== 'string') throw protocolError(`request ${id} has no method name`);
  if (!isPlainObject(args)) throw protocolError(`request ${id} has no argument map`);
  if (chain !== undefined && chain !== null && typeof chain !== 'boolean') {
    throw protocolError(`request ${id} has a chain flag that is not a boolean`);
  }
  return chain === true ? { id, method, args, chain } : { id, method, args };
}

function isErrorBody(value: unknown): value is ErrorBody {
  return (
    isPlainObject(value) &&
    typeof value.code === 'string' &&
    typeof value.message === 'string' &&
    (value.op === undefined || value.op === null || typeof value.op === 'string') &&
    (value.path === undefined || value.path === null || typeof value.path === 'string')
  );
}

/** Checks that a decoded message is a Response; throws RpcError EPROTO if not. */
export function parseResponse(message: unknown): Response {
  if (!isPlainObject(message) || !isId(message.id)) {
    throw protocolError('response is not a map with an id');
  }
  if ('error' in message) {
    if (!isErrorBody(message.error)) throw protocolError(`response ${message.id} has a bad error`);
    const error = { ...message.error };
    if (error.op === null) delete error.op;
    if (error.path === null) delete error.path;
    return { id: message.id, error };
  }
  if (!('result' in message)) throw protocolError(`response ${message.id} has no result`);
  return { id: message.id, result: message.result };
}
