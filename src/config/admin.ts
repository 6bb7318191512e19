// The administrator's config file, tsrun.conf: Singularity's singularity.conf directives that apply
// to this runtime, with their meanings and defaults. `key = value` lines, `#` comments, blank
// lines. The file must be owned by root and writable by nobody else, or tsrun refuses to run.
//
// Each directive tsrun knows is in the table below. A directive that tsrun enforces takes any
// valid value; one it does not enforce yet takes only the value that matches what tsrun does
// (Singularity's default), so that a policy an admin writes is either kept or refused, never
// silently ignored.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { usageError } from '../common/errors';

/** The file's path in the install: `etc/tsrun.conf` beside `dist/`. */
export const DEFAULT_CONFIG_FILE = path.join(__dirname, '..', '..', '..', 'etc', 'tsrun.conf');

/** Names another config file, for tests; honoured only when the real user is root. */
export const CONFIG_FILE_ENV = 'TSRUN_CONF';

export interface AdminConfig {
  /** `max loop devices`: no loop device numbered this or above is used. */
  maxLoopDevices: number;
  /** `shared loop devices`: containers of one image share its read-only loop device. */
  sharedLoopDevices: boolean;
  /** `sessiondir max size`, MiB: the session tmpfs, which also takes --writable-tmpfs writes. */
  sessiondirMaxSize: number;
  /** `allow container squashfs|extfs|dir`: which image formats may run. */
  allowContainerSquashfs: boolean;
  allowContainerExtfs: boolean;
  allowContainerDir: boolean;
  /** `allow pid ns`: whether --pid (and --containall) may make a pid namespace. */
  allowPidNs: boolean;
  /** `config passwd|group|resolv_conf`: give the container its passwd, group and resolv.conf. */
  configPasswd: boolean;
  configGroup: boolean;
  configResolvConf: boolean;
  /** `mount proc|sys|dev|devpts|home|tmp`. */
  mountProc: boolean;
  mountSys: boolean;
  mountDev: 'yes' | 'no' | 'minimal';
  mountDevpts: boolean;
  mountHome: boolean;
  mountTmp: boolean;
  /** `mount hostfs`: bind every host file system (disk, network) at its own path. */
  mountHostfs: boolean;
  /** `mount slave`: host mounts made later propagate into the container (else it is private). */
  mountSlave: boolean;
  /**
   * `enable overlay`: yes and try use the kernel's overlayfs (for --overlay, --writable-tmpfs and
   * missing mount points), try falling back to fuse-overlayfs when the kernel refuses it in a user
   * namespace; driver always uses fuse-overlayfs (as Apptainer's); no forbids --overlay and
   * --writable-tmpfs and skips missing points.
   */
  enableOverlay: 'yes' | 'no' | 'try' | 'driver';
  /** `bind path` lines: src[:dst] binds made in every container (a missing source is skipped). */
  bindPath: string[];
  /** `user bind control`: whether users may give -B/--bind and --scratch. */
  userBindControl: boolean;
  /** `memory fs type`: tmpfs or ramfs for the session dir and the --writable-tmpfs layer. */
  memoryFsType: 'tmpfs' | 'ramfs';
  /** `limit container owners|groups|paths`: comma-separated; empty for no limit. */
  limitContainerOwners: string[];
  limitContainerGroups: string[];
  limitContainerPaths: string[];
  /**
   * `root default capabilities`: what a root payload starts with: full (every capability of the
   * bounding set), file (root's grants in capability.json), no (none); --keep-privs gives full.
   */
  rootDefaultCapabilities: 'full' | 'file' | 'no';
  /** `mksquashfs path`: the directory of mksquashfs for build; empty for $PATH. */
  mksquashfsPath: string;
}

type Kind =
  | { type: 'bool' }
  | { type: 'uint'; min: number; max: number }
  | { type: 'enum'; values: string[] }
  | { type: 'string' }
  | { type: 'list' };

interface Directive {
  kind: Kind;
  /** The field of AdminConfig it sets; absent for directives not enforced yet. */
  field?: keyof AdminConfig;
  default: string;
  /** Directives that may be given more than once (each line adds a value). */
  repeat?: boolean;
  /** For directives not enforced yet: the only values accepted (tsrun's behaviour). */
  only?: string[];
}

const yes = { type: 'bool' } as const;
const text = { type: 'string' } as const;
const list = { type: 'list' } as const;

/** Every directive tsrun knows, by its name in the file. */
const DIRECTIVES: Record<string, Directive> = {
  'max loop devices': {
    kind: { type: 'uint', min: 1, max: 1 << 20 },
    field: 'maxLoopDevices',
    default: '256',
  },
  'shared loop devices': { kind: yes, field: 'sharedLoopDevices', default: 'no' },
  'sessiondir max size': {
    kind: { type: 'uint', min: 1, max: 1 << 20 },
    field: 'sessiondirMaxSize',
    default: '16',
  },
  'allow container squashfs': { kind: yes, field: 'allowContainerSquashfs', default: 'yes' },
  'allow container extfs': { kind: yes, field: 'allowContainerExtfs', default: 'yes' },
  'allow container dir': { kind: yes, field: 'allowContainerDir', default: 'yes' },
  'allow pid ns': { kind: yes, field: 'allowPidNs', default: 'yes' },
  'config passwd': { kind: yes, field: 'configPasswd', default: 'yes' },
  'config group': { kind: yes, field: 'configGroup', default: 'yes' },
  'config resolv_conf': { kind: yes, field: 'configResolvConf', default: 'yes' },
  'mount proc': { kind: yes, field: 'mountProc', default: 'yes' },
  'mount sys': { kind: yes, field: 'mountSys', default: 'yes' },
  'mount dev': {
    kind: { type: 'enum', values: ['yes', 'no', 'minimal'] },
    field: 'mountDev',
    default: 'yes',
  },
  'mount devpts': { kind: yes, field: 'mountDevpts', default: 'yes' },
  'mount home': { kind: yes, field: 'mountHome', default: 'yes' },
  'mount tmp': { kind: yes, field: 'mountTmp', default: 'yes' },
  'bind path': { kind: text, field: 'bindPath', default: '', repeat: true },
  'user bind control': { kind: yes, field: 'userBindControl', default: 'yes' },
  'memory fs type': {
    kind: { type: 'enum', values: ['tmpfs', 'ramfs'] },
    field: 'memoryFsType',
    default: 'tmpfs',
  },
  'limit container owners': { kind: list, field: 'limitContainerOwners', default: '' },
  'limit container groups': { kind: list, field: 'limitContainerGroups', default: '' },
  'limit container paths': { kind: list, field: 'limitContainerPaths', default: '' },
  'mksquashfs path': { kind: text, field: 'mksquashfsPath', default: '' },
  // Not enforced yet: only what tsrun does is accepted.
  'allow setuid': { kind: yes, default: 'yes', only: ['yes'] },
  'mount hostfs': { kind: yes, field: 'mountHostfs', default: 'no' },
  'mount slave': { kind: yes, field: 'mountSlave', default: 'yes' },
  'enable overlay': {
    kind: { type: 'enum', values: ['yes', 'no', 'try', 'driver'] },
    field: 'enableOverlay',
    default: 'try',
  },
  // tsrun has no underlay: with `enable overlay = no` it skips missing mount points, as
  // Singularity does with both off; either value is accepted and documented.
  'enable underlay': { kind: yes, default: 'yes', only: ['yes', 'no'] },
  'root default capabilities': {
    kind: { type: 'enum', values: ['full', 'file', 'no'] },
    field: 'rootDefaultCapabilities',
    default: 'full',
  },
  'always use nv': { kind: yes, default: 'no', only: ['no'] },
  'autofs bug path': { kind: text, default: '', repeat: true, only: [] },
};

/** A config error: names the file and, for a line, its number. */
function configError(file: string, line: number | null, message: string): Error {
  const where = line === null ? `'${file}'` : `'${file}' line ${line}`;
  return usageError(`tsrun.conf ${where}: ${message}`);
}

type Value = boolean | number | string | string[];

/** Checks one value against its directive's kind; returns it parsed. */
function parseValue(name: string, d: Directive, value: string): Value {
  const kind = d.kind;
  if (kind.type === 'list') {
    return value
      .split(',')
      .map((v) => v.trim())
      .filter((v) => v !== '');
  }
  if (kind.type === 'bool') {
    if (value !== 'yes' && value !== 'no') throw new Error(`'${name}' must be yes or no`);
    return value === 'yes';
  }
  if (kind.type === 'uint') {
    const n = /^\d+$/.test(value) ? Number(value) : NaN;
    if (!(n >= kind.min && n <= kind.max)) {
      throw new Error(`'${name}' must be a whole number from ${kind.min} to ${kind.max}`);
    }
    return n;
  }
  if (kind.type === 'enum' && !kind.values.includes(value)) {
    throw new Error(`'${name}' must be one of ${kind.values.join(', ')}`);
  }
  return value;
}

/** The defaults: what tsrun does with no config file lines at all. */
export function defaultAdminConfig(): AdminConfig {
  const conf: Record<string, unknown> = {};
  for (const [name, d] of Object.entries(DIRECTIVES)) {
    if (d.field === undefined) continue;
    conf[d.field] = d.repeat ? [] : parseValue(name, d, d.default);
  }
  return conf as unknown as AdminConfig;
}

/** Parses the file's text; `file` names it in errors. */
export function parseAdminConfig(textOfFile: string, file: string): AdminConfig {
  const conf = defaultAdminConfig() as unknown as Record<string, unknown>;
  const seen = new Map<string, number>();
  textOfFile.split('\n').forEach((raw, i) => {
    const line = i + 1;
    const trimmed = raw.trim();
    if (trimmed === '' || trimmed.startsWith('#')) return;
    const eq = trimmed.indexOf('=');
    if (eq < 0) throw configError(file, line, `expected 'directive = value', found '${trimmed}'`);
    const name = trimmed.slice(0, eq).trim().replace(/\s+/g, ' ');
    const value = trimmed.slice(eq + 1).trim();
    const d = Object.hasOwn(DIRECTIVES, name) ? DIRECTIVES[name] : undefined;
    if (d === undefined) throw configError(file, line, `unknown directive '${name}'`);
    const first = seen.get(name);
    if (first !== undefined && !d.repeat) {
      throw configError(file, line, `'${name}' is given twice (first on line ${first})`);
    }
    seen.set(name, line);
    let parsed: Value;
    try {
      parsed = parseValue(name, d, value);
    } catch (err) {
      throw configError(file, line, (err as Error).message);
    }
    if (d.only !== undefined && value !== '' && !d.only.includes(value)) {
      const accepted = d.only.length === 0 ? 'no value' : d.only.join(' or ');
      throw configError(
        file,
        line,
        `'${name} = ${value}' is not supported by tsrun yet (it accepts ${accepted})`,
      );
    }
    if (d.field === undefined) return;
    if (d.repeat) {
      if (value !== '') (conf[d.field] as string[]).push(value);
    } else {
      conf[d.field] = parsed;
    }
  });
  return conf as unknown as AdminConfig;
}

/**
 * The config file to read: the install's, or for root only the one named by TSRUN_CONF (a
 * user who could name their own file could lift the admin's limits).
 */
export function adminConfigFile(env: NodeJS.ProcessEnv = process.env): string {
  const override = env[CONFIG_FILE_ENV];
  if (override === undefined || override === '') return DEFAULT_CONFIG_FILE;
  if (process.getuid!() !== 0) {
    throw usageError(`${CONFIG_FILE_ENV} names another tsrun.conf: only root may do that`);
  }
  return path.resolve(override);
}

/** Reads and checks the admin config: root-owned, writable by no one else, well-formed. */
export function loadAdminConfig(file: string = adminConfigFile()): AdminConfig {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const what = code === 'ENOENT' ? 'does not exist' : code === 'ELOOP' ? 'is a symlink' : code;
    throw configError(file, null, `cannot be read: it ${what}`);
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw configError(file, null, 'is not a regular file');
    if (st.uid !== 0) throw configError(file, null, `must be owned by root, not uid ${st.uid}`);
    if ((st.mode & 0o022) !== 0) {
      const mode = (st.mode & 0o7777).toString(8).padStart(4, '0');
      throw configError(file, null, `must be writable by root only (its mode is ${mode})`);
    }
    return parseAdminConfig(fs.readFileSync(fd, 'utf8'), file);
  } finally {
    fs.closeSync(fd);
  }
}
