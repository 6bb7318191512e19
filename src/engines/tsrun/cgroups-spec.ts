// The --apply-cgroups file: the OCI runtime spec's `linux.resources` object, in JSON (Singularity
// 3.1 reads the same object from TOML). Stage 1 reads and checks it on the host, as the caller;
// the master applies what it returns (cgroups.ts). tsrun supports memory, cpu and pids; other
// OCI keys fail with "not supported", unknown keys as unknown.
import * as fs from 'node:fs';
import { usageError } from '../../common/errors';

export interface MemoryResources {
  /** Bytes; memory.limit_in_bytes (v1), memory.max (v2). */
  limit?: number;
  /** Bytes; memory.soft_limit_in_bytes (v1), memory.low (v2). */
  reservation?: number;
  /** Memory plus swap, bytes, as in OCI; not below `limit`. */
  swap?: number;
  disableOOMKiller?: boolean;
}

export interface CpuResources {
  shares?: number;
  /** Microseconds of CPU time per period. */
  quota?: number;
  /** Microseconds. */
  period?: number;
  /** A CPU list, e.g. "0-1,3". */
  cpus?: string;
  /** A memory node list, e.g. "0". */
  mems?: string;
}

export interface PidsResources {
  limit?: number;
}

export interface LinuxResources {
  memory?: MemoryResources;
  cpu?: CpuResources;
  pids?: PidsResources;
}

/** Largest file read: an OCI resources object is a few hundred bytes. */
const MAX_FILE = 64 * 1024;

type Check = (value: unknown, field: string) => void;

const INT_RANGE = (min: number, max = Number.MAX_SAFE_INTEGER): Check => {
  return (value, field) => {
    if (!Number.isSafeInteger(value) || (value as number) < min || (value as number) > max) {
      const range = max === Number.MAX_SAFE_INTEGER ? `at least ${min}` : `${min} to ${max}`;
      throw new FieldError(field, `must be an integer, ${range} (got ${JSON.stringify(value)})`);
    }
  };
};

const BOOL: Check = (value, field) => {
  if (typeof value !== 'boolean') {
    throw new FieldError(field, `must be true or false (got ${JSON.stringify(value)})`);
  }
};

const LIST: Check = (value, field) => {
  if (typeof value !== 'string' || !/^\d+(-\d+)?(,\d+(-\d+)?)*$/.test(value)) {
    throw new FieldError(field, `must be a list like "0-1,3" (got ${JSON.stringify(value)})`);
  }
};

/** The keys tsrun applies, with their checks (ranges are the kernel's). */
const SUPPORTED: Record<string, Record<string, Check>> = {
  memory: {
    limit: INT_RANGE(1),
    reservation: INT_RANGE(0),
    swap: INT_RANGE(1),
    disableOOMKiller: BOOL,
  },
  cpu: {
    shares: INT_RANGE(2, 262144),
    quota: INT_RANGE(1000),
    period: INT_RANGE(1000, 1000000),
    cpus: LIST,
    mems: LIST,
  },
  pids: { limit: INT_RANGE(1) },
};

/** OCI keys tsrun does not apply: refused as not supported rather than ignored. */
const UNSUPPORTED: Record<string, string[]> = {
  '': ['devices', 'blockIO', 'hugepageLimits', 'network', 'rdma', 'unified'],
  memory: ['kernel', 'kernelTCP', 'swappiness', 'useHierarchy', 'checkBeforeUpdate'],
  cpu: ['realtimeRuntime', 'realtimePeriod', 'burst', 'idle'],
  pids: [],
};

class FieldError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(message);
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function checkKey(section: string, key: string): void {
  const field = section === '' ? key : `${section}.${key}`;
  if (UNSUPPORTED[section]?.includes(key)) throw new FieldError(field, 'is not supported by tsrun');
  if (section === '' ? SUPPORTED[key] === undefined : SUPPORTED[section][key] === undefined) {
    throw new FieldError(field, 'is not a known key');
  }
}

function checkSection(section: string, value: unknown): void {
  if (!isObject(value)) throw new FieldError(section, 'must be an object');
  for (const [key, v] of Object.entries(value)) {
    checkKey(section, key);
    SUPPORTED[section][key](v, `${section}.${key}`);
  }
}

/** Rules between fields: swap counts memory plus swap, so it needs a limit below it. */
function checkMemory(memory: MemoryResources | undefined): void {
  if (memory?.swap === undefined) return;
  if (memory.limit === undefined) {
    throw new FieldError('memory.swap', 'needs memory.limit (swap is memory plus swap)');
  }
  if (memory.swap < memory.limit) {
    throw new FieldError('memory.swap', `must not be below memory.limit (${memory.limit})`);
  }
}

function setsNothing(res: LinuxResources): boolean {
  return [res.memory, res.cpu, res.pids].every(
    (s) => s === undefined || Object.keys(s).length === 0,
  );
}

/** Checks a parsed resources object; the error names the field. */
export function parseResources(value: unknown): LinuxResources {
  if (!isObject(value)) throw new FieldError('', 'must hold a JSON object (linux.resources)');
  for (const [key, section] of Object.entries(value)) {
    checkKey('', key);
    checkSection(key, section);
  }
  const res = value as LinuxResources;
  checkMemory(res.memory);
  if (setsNothing(res)) throw new FieldError('', 'sets no memory, cpu or pids limit');
  return res;
}

function readResourcesFile(file: string): string {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new FieldError('', code === 'ENOENT' ? 'does not exist' : `cannot be read: ${code}`);
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw new FieldError('', 'is not a regular file');
    if (st.size > MAX_FILE) throw new FieldError('', `is larger than ${MAX_FILE} bytes`);
    return fs.readFileSync(fd, 'utf8');
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Reads and checks the --apply-cgroups file. A failure is one line naming the file and the field:
 * `--apply-cgroups '/f.json': memory.limit must be an integer, at least 1 (got -5)`.
 */
export function loadResourcesFile(file: string): LinuxResources {
  const what = `--apply-cgroups '${file}'`;
  try {
    const text = readResourcesFile(file);
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (err) {
      throw new FieldError('', `is not valid JSON: ${(err as Error).message}`);
    }
    return parseResources(value);
  } catch (err) {
    if (!(err instanceof FieldError)) throw err;
    throw usageError(`${what}: ${err.field === '' ? '' : `${err.field} `}${err.message}`);
  }
}
