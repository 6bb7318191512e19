// The administrator's capability grants, `etc/capability.json` of the install (Singularity's
// capability.json): {"users": {"NAME": ["CAP_NET_RAW", ...]}, "groups": {"NAME": [...]}}.
// `tsrun capability add|drop|list` (root only) manages it; stage 1 reads it so that a non-root
// caller's --add-caps gets only what was granted to the user or one of the user's groups. Like
// tsrun.conf, the file must be owned by root and writable by nobody else; a missing file grants
// nothing.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { errorMessage, usageError } from '../common/errors';
import { addon } from '../native/addon';
import { CAPABILITIES } from '../native/constants';

/** The file's path in the install: `etc/capability.json` beside `dist/`. */
export const DEFAULT_CAPABILITY_FILE = path.join(
  __dirname,
  '..',
  '..',
  '..',
  'etc',
  'capability.json',
);

/** Names another file, for tests; honoured only when the real user is root. */
export const CAPABILITY_FILE_ENV = 'TSRUN_CAPABILITY_FILE';

export type GrantKind = 'users' | 'groups';
export type CapabilityGrants = Record<GrantKind, Record<string, string[]>>;

/** A name -> capabilities table without a prototype: a user may be called 'constructor'. */
function table(): Record<string, string[]> {
  return Object.create(null) as Record<string, string[]>;
}

export function emptyGrants(): CapabilityGrants {
  return { users: table(), groups: table() };
}

function fileError(file: string, message: string): Error {
  return usageError(`capability file '${file}': ${message}`);
}

/** The file to use: the install's, or for root only the one named by TSRUN_CAPABILITY_FILE. */
export function capabilityFile(env: NodeJS.ProcessEnv = process.env): string {
  const override = env[CAPABILITY_FILE_ENV];
  if (override === undefined || override === '') return DEFAULT_CAPABILITY_FILE;
  if (process.getuid!() !== 0) {
    throw usageError(`${CAPABILITY_FILE_ENV} names another capability file: only root may do that`);
  }
  return path.resolve(override);
}

function parseSection(value: unknown, kind: GrantKind, file: string): Record<string, string[]> {
  if (value === undefined) return table();
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw fileError(file, `'${kind}' must be an object`);
  }
  const out = table();
  for (const [name, caps] of Object.entries(value)) {
    const known = CAPABILITIES as readonly string[];
    if (!Array.isArray(caps) || !caps.every((c) => typeof c === 'string' && known.includes(c))) {
      throw fileError(file, `${kind}.${name} must be an array of capability names`);
    }
    out[name] = caps as string[];
  }
  return out;
}

/** Parses the file's text; `file` names it in errors. */
export function parseGrants(text: string, file: string): CapabilityGrants {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw fileError(file, `not valid JSON: ${errorMessage(err)}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw fileError(file, 'must hold a JSON object');
  }
  const obj = value as Record<string, unknown>;
  return {
    users: parseSection(obj.users, 'users', file),
    groups: parseSection(obj.groups, 'groups', file),
  };
}

/** Reads the grants: root-owned, writable by root only, not a symlink. Missing: no grants. */
export function readGrants(file: string = capabilityFile()): CapabilityGrants {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return emptyGrants();
    throw fileError(file, `cannot be read: ${code === 'ELOOP' ? 'it is a symlink' : code}`);
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw fileError(file, 'is not a regular file');
    if (st.uid !== 0) throw fileError(file, `must be owned by root, not uid ${st.uid}`);
    if ((st.mode & 0o022) !== 0) {
      const mode = (st.mode & 0o7777).toString(8).padStart(4, '0');
      throw fileError(file, `must be writable by root only (its mode is ${mode})`);
    }
    return parseGrants(fs.readFileSync(fd, 'utf8'), file);
  } finally {
    fs.closeSync(fd);
  }
}

/** Writes the grants atomically (a temporary file renamed over it), root-owned, mode 0644. */
function writeGrants(file: string, grants: CapabilityGrants): void {
  const tmp = `${file}.tmp.${process.pid}`;
  const fd = fs.openSync(tmp, 'wx', 0o644);
  try {
    fs.writeFileSync(fd, `${JSON.stringify(grants, null, 2)}\n`);
    fs.fchownSync(fd, 0, 0);
    fs.fchmodSync(fd, 0o644);
    fs.fsyncSync(fd);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
}

const LOCK_TRIES = 250;

/** Blocks until the exclusive lock on `fd` is ours (another admin's update takes milliseconds). */
function lockExclusive(fd: number, file: string): void {
  const sleeper = new Int32Array(new SharedArrayBuffer(4));
  for (let i = 0; i < LOCK_TRIES; i++) {
    try {
      addon().flock(fd, true);
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EWOULDBLOCK') throw err;
      Atomics.wait(sleeper, 0, 0, 20);
    }
  }
  throw fileError(file, 'another tsrun capability command holds it for too long');
}

/**
 * Reads the grants, lets `change` edit them and writes them back, with the file's directory
 * locked so that two admins' updates do not overwrite each other.
 */
export function updateGrants(
  file: string,
  change: (grants: CapabilityGrants) => void,
): CapabilityGrants {
  const dir = path.dirname(file);
  fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
  const dirFd = fs.openSync(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  try {
    lockExclusive(dirFd, file);
    const grants = readGrants(file);
    change(grants);
    writeGrants(file, grants);
    return grants;
  } finally {
    fs.closeSync(dirFd);
  }
}

/** What the grants give a user: the user's own and those of each of the user's groups. */
export function grantedTo(grants: CapabilityGrants, user: string, groups: string[]): string[] {
  const caps = [...(grants.users[user] ?? []), ...groups.flatMap((g) => grants.groups[g] ?? [])];
  return CAPABILITIES.filter((c) => caps.includes(c));
}
