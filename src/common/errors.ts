// tsrun's own errors. A failure is built where it happens (a native SystemError carries code,
// syscall, path), callers add context on the way up with `wrap`, and it is printed once, where it
// is handled, as one line: "tsrun: preparing rootfs '/img': mount '/img' -> '/x': EPERM (...)".

/** An error of tsrun: `code` is an errno name where there is one, else a tsrun kind. */
export class TsrunError extends Error {
  readonly code: string;
  readonly exitCode: number;

  constructor(
    message: string,
    code = 'ETSRUN',
    options: { cause?: unknown; exitCode?: number } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'TsrunError';
    this.code = code;
    this.exitCode = options.exitCode ?? 255;
  }
}

/** Bad input from the user: a one-line message, exit 255. */
export function usageError(message: string): TsrunError {
  return new TsrunError(message, 'EINVAL');
}

/** The code of any error: its `code` when it has one. */
export function errorCode(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : 'ETSRUN';
}

export function errorMessage(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  // One line, whatever a message quotes (a JSON parser quotes the text it choked on).
  return message.replace(/\s*\n\s*/g, ' ');
}

/** Adds context in front of an error's message, keeping its code. */
export function wrap(err: unknown, context: string): TsrunError {
  const exitCode = err instanceof TsrunError ? err.exitCode : 255;
  return new TsrunError(`${context}: ${errorMessage(err)}`, errorCode(err), {
    cause: err,
    exitCode,
  });
}

/** Runs `fn`; a failure is rethrown with `context` in front of it. */
export async function withContext<T>(context: string, fn: () => Promise<T> | T): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw wrap(err, context);
  }
}

/** Error data that crosses a process boundary (stage 1 and stage 2 report failures as data). */
export interface ErrorData {
  message: string;
  code: string;
}

export function toErrorData(err: unknown): ErrorData {
  return { message: errorMessage(err), code: errorCode(err) };
}

export function fromErrorData(data: ErrorData, context: string): TsrunError {
  return new TsrunError(`${context}: ${data.message}`, data.code);
}
