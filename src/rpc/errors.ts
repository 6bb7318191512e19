// Every error the RPC layer builds, and their conversion to and from the wire. An error crosses the
// connection as {code, message, op?, path?}: `code` is the errno name when there is one ('EPERM'),
// else one of the kinds below; `op` is the system call (or the RPC method for EINVAL/ENOSYS) and
// `path` the path it acted on, as the caller named it.

/** Error kinds that are not the errno of a failed system call. */
export const Kind = {
  protocol: 'EPROTO', // malformed or oversized frame, message of the wrong shape
  unknownMethod: 'ENOSYS', // no such method for this engine
  badArgument: 'EINVAL', // an argument is missing, of the wrong type, or unknown
  tooLarge: 'EMSGSIZE', // a message to send does not fit in one frame
  closed: 'ECONNRESET', // the connection closed before the answer came
  internal: 'EINTERNAL', // a bug: a handler threw something that is not a system error
  cancelled: 'ECANCELED', // a chained request not run because the one before it failed
} as const;

/** What an error response carries. */
export interface ErrorBody {
  code: string;
  message: string;
  op?: string;
  path?: string;
}

export class RpcError extends Error {
  readonly code: string;
  readonly op?: string;
  readonly path?: string;

  constructor(code: string, message: string, where: { op?: string; path?: string } = {}) {
    super(message);
    this.name = 'RpcError';
    this.code = code;
    if (where.op !== undefined) this.op = where.op;
    if (where.path !== undefined) this.path = where.path;
  }

  toBody(): ErrorBody {
    const body: ErrorBody = { code: this.code, message: this.message };
    if (this.op !== undefined) body.op = this.op;
    if (this.path !== undefined) body.path = this.path;
    return body;
  }
}

export function protocolError(message: string): RpcError {
  return new RpcError(Kind.protocol, `rpc protocol: ${message}`);
}

export function unknownMethod(method: string): RpcError {
  return new RpcError(Kind.unknownMethod, `unknown method '${method}'`, { op: method });
}

export function cancelled(method: string): RpcError {
  return new RpcError(Kind.cancelled, `${method}: not run, the request before it failed`, {
    op: method,
  });
}

/** An argument that fails validation; `expected` completes "expected ...". */
export function badArgument(field: string, expected: string): RpcError {
  return new RpcError(Kind.badArgument, `bad argument '${field}': expected ${expected}`);
}

export function unknownArgument(field: string): RpcError {
  return new RpcError(Kind.badArgument, `unknown argument '${field}'`);
}

export function frameTooLarge(size: number, max: number): RpcError {
  return new RpcError(Kind.tooLarge, `rpc message of ${size} bytes is over the ${max}-byte limit`);
}

export function connectionClosed(method?: string): RpcError {
  const what =
    method === undefined
      ? 'rpc connection is closed'
      : `rpc connection closed before '${method}' was answered`;
  return new RpcError(Kind.closed, what, method === undefined ? {} : { op: method });
}

/** A system error with an errno name, as the addon and Node's fs throw them. */
interface SystemErrorLike {
  code: string;
  syscall?: string;
  path?: string;
  dest?: string;
}

function isSystemError(err: unknown): err is SystemErrorLike {
  const code = (err as { code?: unknown } | null)?.code;
  return err instanceof Error && typeof code === 'string' && /^E[A-Z0-9]+$/.test(code);
}

/** "mount '/a' -> '/b': EPERM", crun style: the call, the paths in quotes, the errno name. */
export function systemErrorMessage(
  code: string,
  op?: string,
  path?: string,
  dest?: string,
): string {
  const where =
    path === undefined ? '' : dest === undefined ? ` '${path}'` : ` '${path}' -> '${dest}'`;
  return op === undefined ? `${code}${where}` : `${op}${where}: ${code}`;
}

/** Converts whatever a handler threw into the error a response carries. */
export function toErrorBody(err: unknown): ErrorBody {
  if (err instanceof RpcError) return err.toBody();
  if (isSystemError(err)) {
    const body: ErrorBody = {
      code: err.code,
      message: systemErrorMessage(err.code, err.syscall, err.path, err.dest),
    };
    if (err.syscall !== undefined) body.op = err.syscall;
    if (err.path !== undefined) body.path = err.path;
    return body;
  }
  // The addon throws TypeError for arguments it refuses.
  if (err instanceof TypeError) return { code: Kind.badArgument, message: err.message };
  const message = err instanceof Error ? err.message : String(err);
  return { code: Kind.internal, message: `internal error: ${message}` };
}

/** Rebuilds the error a response carries, on the client side. */
export function fromErrorBody(body: ErrorBody): RpcError {
  return new RpcError(body.code, body.message, { op: body.op, path: body.path });
}

/** A system error built in TypeScript, shaped like the ones the addon and Node's fs throw. */
export interface SystemErrorShape extends Error {
  code: string;
  syscall: string;
  path?: string;
}

export function systemError(code: string, syscall: string, path?: string): SystemErrorShape {
  const err = new Error(systemErrorMessage(code, syscall, path)) as SystemErrorShape;
  err.code = code;
  err.syscall = syscall;
  if (path !== undefined) err.path = path;
  return err;
}
