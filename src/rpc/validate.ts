// Argument checking for method tables: a method declares the shape of its argument map once, and
// a request that does not match it is refused with EINVAL naming the first bad field. Unknown
// fields are refused too, so that a misspelt `root` cannot silently resolve outside the root.
import { badArgument, unknownArgument } from './errors';

/** How one field is checked. */
export type FieldKind =
  | 'string' // any string without NUL bytes
  | 'name' // a non-empty string without NUL bytes
  | 'path' // an absolute path: starts with '/', no NUL bytes
  | 'uint' // an integer from 0 to 2^32 - 1
  | 'int' // a safe integer
  | 'offset' // a safe integer from 0: file offsets and sizes, which outgrow 32 bits
  | 'bytes' // binary data (msgpack bin)
  | 'bool';

/** A field kind; `?` lets the field be absent, `|null` lets it be null. */
export type FieldSpec = FieldKind | `${FieldKind}?` | `${FieldKind}|null`;

/** Checks an argument map; throws RpcError EINVAL naming the first bad field. */
export type Validator<A> = (args: unknown) => asserts args is A;

/** One FieldSpec per field of A, optional fields included. */
export type Shape<A> = { [K in keyof Required<A>]: FieldSpec };

const checks: Record<FieldKind, [test: (v: unknown) => boolean, expected: string]> = {
  string: [(v) => typeof v === 'string' && !v.includes('\0'), 'a string'],
  name: [(v) => typeof v === 'string' && v.length > 0 && !v.includes('\0'), 'a non-empty string'],
  path: [
    (v) => typeof v === 'string' && v.startsWith('/') && !v.includes('\0'),
    'an absolute path',
  ],
  uint: [
    (v) => Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 0xffffffff,
    'an unsigned 32-bit integer',
  ],
  int: [(v) => Number.isSafeInteger(v), 'an integer'],
  offset: [(v) => Number.isSafeInteger(v) && (v as number) >= 0, 'a non-negative integer'],
  bytes: [(v) => v instanceof Uint8Array, 'binary data'],
  bool: [(v) => typeof v === 'boolean', 'a boolean'],
};

function checkField(field: string, spec: FieldSpec, value: unknown): void {
  const optional = spec.endsWith('?');
  const nullable = spec.endsWith('|null');
  if (value === undefined && optional) return;
  if (value === null && nullable) return;
  const kind = spec.replace(/\?$|\|null$/, '') as FieldKind;
  const [test, expected] = checks[kind];
  if (!test(value)) throw badArgument(field, nullable ? `${expected} or null` : expected);
}

/** Builds a validator for argument maps of shape A. */
export function shape<A>(fields: Shape<A>): Validator<A> {
  const specs = Object.entries(fields) as [string, FieldSpec][];
  return (args: unknown): asserts args is A => {
    if (typeof args !== 'object' || args === null) throw badArgument('args', 'a map');
    const map = args as Record<string, unknown>;
    for (const key of Object.keys(map)) {
      if (!Object.hasOwn(fields, key)) throw unknownArgument(key);
    }
    for (const [field, spec] of specs) checkField(field, spec, map[field]);
  };
}
