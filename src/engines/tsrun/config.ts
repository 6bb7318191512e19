// The tsrun engine's config: what the wrapper asks for (image, action, binds, flags) and what
// stage 1 adds (the user's identity, the image's kind). It travels as the `engineConfig` part of
// the engine config.
import { usageError } from '../../common/errors';
import { INSTANCE_NAME } from '../../instances/state';
import type { ImageSource } from '../../images/detect';
import type { AdminConfig } from '../../config/admin';
import { parsePrivilegeRequest, PrivilegeRequest } from './privileges';
import type { LinuxResources } from './cgroups-spec';

export type Action = 'exec' | 'run' | 'shell' | 'inspect' | 'start';

/** instance start: the instance's name (the action is 'start'). */
export interface InstanceRequest {
  name: string;
}

/** instance://NAME: the running instance to join, as the wrapper read its state file. */
export interface JoinRequest {
  name: string;
  /** Host pid of the instance's container process (pid 1 of its pid namespace). */
  pid: number;
  /** Field 22 of /proc/PID/stat when the instance started: a reused pid does not match. */
  startTime: string;
  /** The uid that started the instance. */
  uid: number;
}

export interface BindSpec {
  source: string;
  destination: string;
  readonly: boolean;
}

/** An --overlay: a directory or an ext3 file whose upper layer takes the container's writes. */
export interface OverlaySpec {
  path: string;
  readonly: boolean;
  /** What the overlay is, filled in by stage 1. */
  source?: ImageSource;
}

export interface UserInfo {
  uid: number;
  gid: number;
  name: string;
  gecos: string;
  home: string;
  shell: string;
  /** Supplementary groups (the primary group included), with their names on the host. */
  groups: { gid: number; name: string }[];
}

export interface TsrunEngineConfig {
  image: string;
  action: Action;
  /** exec: the command and its arguments; run: arguments for the runscript; shell: shell args. */
  args: string[];
  /** The host environment the payload starts from. */
  env: Record<string, string>;
  /** --cleanenv: pass only a few host variables (TERM, LANG, proxies). */
  cleanEnv?: boolean;
  /** --env and --env-file: variables set inside, over the image's and prefixed ones. */
  envSet?: Record<string, string>;
  /** The wrapper's working directory on the host. */
  cwd: string;
  /** --pwd: the working directory inside the container. */
  pwd?: string;
  binds: BindSpec[];
  writable: boolean;
  /** --writable-tmpfs: writes go to a tmpfs and vanish with the container. */
  writableTmpfs?: boolean;
  overlays?: OverlaySpec[];
  contain: boolean;
  /** --no-home: no home directory mount. */
  noHome?: boolean;
  /** -H/--home src[:dst]: the home directory bound from src (dst, default src, is $HOME). */
  homeBind?: { source: string; destination: string };
  /** -W/--workdir: host directory for /tmp, /var/tmp, home and scratch of a contained run. */
  workdir?: string;
  /** -S/--scratch: empty directories made at these paths inside. */
  scratch?: string[];
  /** --dns: name servers written into the container's /etc/resolv.conf. */
  dns?: string[];
  /** -n/--net: a new network namespace with only the loopback interface, up. */
  netNamespace?: boolean;
  /**
   * Namespaces to join instead of creating, by path (/proc/PID/ns/KIND): for wrappers that hand
   * tsrun-starter a config; no CLI flag sets it.
   */
  joinNamespaces?: Partial<Record<'net' | 'uts' | 'ipc', string>>;
  /** -u/--userns: the user-namespace mode for root too (always on for other users). */
  userns?: boolean;
  /** --fakeroot: uid and gid 0 inside a user namespace, mapped to the caller. */
  fakeroot?: boolean;
  /** -p without --no-init: an init runs as pid 1 and the payload as its child. */
  noInit?: boolean;
  pidNamespace: boolean;
  utsNamespace: boolean;
  ipcNamespace: boolean;
  hostname?: string;
  /** --keep-privs, --no-privs, --add-caps, --drop-caps, --security. */
  privileges?: PrivilegeRequest;
  /** --apply-cgroups: the file holding an OCI `linux.resources` object, in JSON. */
  applyCgroups?: string;
  /** That file's resources, as stage 1 read and checked them. */
  cgroups?: LinuxResources;
  /** inspect: what the wrapper read of a SIF file's header and descriptors; print JSON. */
  inspect?: { sif?: unknown; json: boolean };
  /** instance start: run as the instance NAME (pid and ipc namespaces, tsrun-init stays). */
  instance?: InstanceRequest;
  /** exec|run|shell instance://NAME: join that instance instead of making a container. */
  join?: JoinRequest;
  /** Filled in by stage 1. */
  user?: UserInfo;
  /** The admin config's settings that the master and the RPC server act on. */
  admin?: AdminSettings;
  source?: ImageSource;
  sessionDir?: string;
}

/** What of tsrun.conf the container's creation needs, as stage 1 read it. */
export type AdminSettings = Pick<
  AdminConfig,
  | 'maxLoopDevices'
  | 'sharedLoopDevices'
  | 'sessiondirMaxSize'
  | 'memoryFsType'
  | 'configPasswd'
  | 'configGroup'
  | 'configResolvConf'
  | 'mountProc'
  | 'mountSys'
  | 'mountDev'
  | 'mountDevpts'
  | 'mountHome'
  | 'mountTmp'
  | 'mountSlave'
  | 'enableOverlay'
> & {
  /** The `bind path` binds whose source exists, parsed. */
  binds: BindSpec[];
};

type Obj = Record<string, unknown>;

function field<T>(obj: Obj, name: string, check: (v: unknown) => boolean, what: string): T {
  const value = obj[name];
  if (!check(value)) throw usageError(`engine config: ${name} must be ${what}`);
  return value as T;
}

const isString = (v: unknown): boolean => typeof v === 'string';
const isBool = (v: unknown): boolean => typeof v === 'boolean';
const isAbsolute = (v: unknown): boolean => typeof v === 'string' && v.startsWith('/');
const isStringArray = (v: unknown): boolean => Array.isArray(v) && v.every(isString);
const isAbsoluteArray = (v: unknown): boolean => Array.isArray(v) && v.every(isAbsolute);
const optional = (check: (v: unknown) => boolean) => (v: unknown) => v === undefined || check(v);

function isEnv(v: unknown): boolean {
  return typeof v === 'object' && v !== null && Object.values(v).every(isString);
}

function parseBind(value: unknown, index: number): BindSpec {
  if (typeof value !== 'object' || value === null) {
    throw usageError(`engine config: binds[${index}] must be an object`);
  }
  const obj = value as Obj;
  return {
    source: field(obj, 'source', isAbsolute, `an absolute path (binds[${index}])`),
    destination: field(obj, 'destination', isAbsolute, `an absolute path (binds[${index}])`),
    readonly: field(obj, 'readonly', isBool, `a boolean (binds[${index}])`),
  };
}

function parseOverlay(value: unknown, index: number): OverlaySpec {
  const obj = (typeof value === 'object' && value !== null ? value : {}) as Obj;
  return {
    path: field(obj, 'path', isAbsolute, `an absolute path (overlays[${index}])`),
    readonly: field(obj, 'readonly', isBool, `a boolean (overlays[${index}])`),
    source: obj.source as ImageSource | undefined,
  };
}

function parseHomeBind(value: unknown): TsrunEngineConfig['homeBind'] {
  if (value === undefined) return undefined;
  const obj = (typeof value === 'object' && value !== null ? value : {}) as Obj;
  return {
    source: field(obj, 'source', isAbsolute, 'an absolute path (homeBind)'),
    destination: field(obj, 'destination', isAbsolute, 'an absolute path (homeBind)'),
  };
}

/** Parses one -H/--home value: src[:dst]. */
export function parseHomeSpec(spec: string): { source: string; destination: string } {
  const parts = spec.split(':');
  if (parts.length > 2 || parts[0] === '') throw usageError(`--home '${spec}': expected src[:dst]`);
  const [source, destination = source] = parts;
  if (!destination.startsWith('/')) {
    throw usageError(`--home '${spec}': destination '${destination}' must be an absolute path`);
  }
  return { source, destination };
}

/** Parses one --overlay value: PATH[:ro]. */
export function parseOverlaySpec(spec: string): OverlaySpec {
  const ro = spec.endsWith(':ro');
  const file = ro ? spec.slice(0, -3) : spec.replace(/:rw$/, '');
  if (file === '') throw usageError(`--overlay '${spec}': expected PATH[:ro]`);
  return { path: file, readonly: ro };
}

function parseInstance(value: unknown): InstanceRequest | undefined {
  if (value === undefined) return undefined;
  const name = field<string>(value as Obj, 'name', isString, 'a string');
  if (!INSTANCE_NAME.test(name))
    throw usageError(`engine config: instance.name '${name}' is invalid`);
  return { name };
}

function parseJoin(value: unknown): JoinRequest | undefined {
  if (value === undefined) return undefined;
  const obj = value as Obj;
  const isId = (v: unknown): boolean => Number.isInteger(v) && (v as number) >= 0;
  return {
    name: field(obj, 'name', isString, 'a string'),
    pid: field(obj, 'pid', (v) => isId(v) && (v as number) > 0, 'a pid'),
    startTime: field(obj, 'startTime', (v) => isString(v) && /^\d+$/.test(v as string), 'digits'),
    uid: field(obj, 'uid', isId, 'a uid'),
  };
}

/** Checks the shape of a tsrun engine config; returns it typed. */
export function parseTsrunConfig(value: unknown): TsrunEngineConfig {
  const obj = value as Obj;
  const action = field<Action>(
    obj,
    'action',
    (v) => ['exec', 'run', 'shell', 'inspect', 'start'].includes(v as string),
    "'exec', 'run', 'shell', 'inspect' or 'start'",
  );
  const binds = field<unknown[]>(obj, 'binds', Array.isArray, 'an array');
  return {
    image: field(obj, 'image', isAbsolute, 'an absolute path'),
    action,
    args: field(obj, 'args', isStringArray, 'an array of strings'),
    env: field(obj, 'env', isEnv, 'an object of strings'),
    cleanEnv: field(obj, 'cleanEnv', optional(isBool), 'a boolean'),
    envSet: field(obj, 'envSet', optional(isEnv), 'an object of strings'),
    cwd: field(obj, 'cwd', isAbsolute, 'an absolute path'),
    pwd: field(obj, 'pwd', optional(isAbsolute), 'an absolute path'),
    binds: binds.map(parseBind),
    writable: field(obj, 'writable', isBool, 'a boolean'),
    writableTmpfs: field(obj, 'writableTmpfs', optional(isBool), 'a boolean'),
    overlays: field<unknown[] | undefined>(
      obj,
      'overlays',
      optional(Array.isArray),
      'an array',
    )?.map(parseOverlay),
    contain: field(obj, 'contain', isBool, 'a boolean'),
    noHome: field(obj, 'noHome', optional(isBool), 'a boolean'),
    homeBind: parseHomeBind(obj.homeBind),
    workdir: field(obj, 'workdir', optional(isAbsolute), 'an absolute path'),
    scratch: field(obj, 'scratch', optional(isAbsoluteArray), 'an array of absolute paths'),
    dns: field(obj, 'dns', optional(isStringArray), 'an array of strings'),
    netNamespace: field(obj, 'netNamespace', optional(isBool), 'a boolean'),
    noInit: field(obj, 'noInit', optional(isBool), 'a boolean'),
    userns: field(obj, 'userns', optional(isBool), 'a boolean'),
    fakeroot: field(obj, 'fakeroot', optional(isBool), 'a boolean'),
    joinNamespaces: field(
      obj,
      'joinNamespaces',
      optional(
        (v) =>
          isEnv(v) &&
          Object.entries(v as Obj).every(
            ([k, p]) => ['net', 'uts', 'ipc'].includes(k) && isAbsolute(p),
          ),
      ),
      'an object of net, uts or ipc to absolute paths',
    ),
    pidNamespace: field(obj, 'pidNamespace', isBool, 'a boolean'),
    utsNamespace: field(obj, 'utsNamespace', isBool, 'a boolean'),
    ipcNamespace: field(obj, 'ipcNamespace', isBool, 'a boolean'),
    hostname: field(obj, 'hostname', optional(isString), 'a string'),
    privileges: parsePrivilegeRequest(obj.privileges),
    applyCgroups: field(obj, 'applyCgroups', optional(isAbsolute), 'an absolute path'),
    cgroups: obj.cgroups as LinuxResources | undefined,
    user: obj.user as UserInfo | undefined,
    admin: obj.admin as AdminSettings | undefined,
    source: obj.source as ImageSource | undefined,
    inspect: obj.inspect as TsrunEngineConfig['inspect'],
    instance: parseInstance(obj.instance),
    join: parseJoin(obj.join),
    sessionDir: field(obj, 'sessionDir', optional(isAbsolute), 'an absolute path'),
  };
}

/** Parses one -B/--bind value: src[:dst[:ro|rw]]. */
export function parseBindSpec(spec: string): BindSpec {
  const parts = spec.split(':');
  if (parts.length > 3 || parts[0] === '')
    throw usageError(`bind '${spec}': expected src[:dst[:ro|rw]]`);
  const [source, destination = source, mode = 'rw'] = parts;
  if (mode !== 'ro' && mode !== 'rw') {
    throw usageError(`bind '${spec}': unknown option '${mode}' (expected ro or rw)`);
  }
  if (!destination.startsWith('/')) {
    throw usageError(`bind '${spec}': destination '${destination}' must be an absolute path`);
  }
  return { source, destination, readonly: mode === 'ro' };
}
