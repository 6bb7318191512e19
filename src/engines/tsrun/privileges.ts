// What the caller asks for the payload's privileges (--keep-privs, --no-privs, --add-caps,
// --drop-caps, --security): the request as it travels in the engine config, and the parsers the
// wrapper and every stage share. Stage 1 decides from it (prepare-privileges.ts); stage 2 applies.
import { usageError } from '../../common/errors';
import { CAPABILITIES } from '../../native/constants';

/** The request in the engine config. Capability names are normalised ('CAP_NET_RAW', 'ALL'). */
export interface PrivilegeRequest {
  keepPrivs: boolean;
  noPrivs: boolean;
  addCaps: string[];
  dropCaps: string[];
  /** --security seccomp:FILE, a host path read by stage 1. */
  seccompProfile?: string;
  /** --security uid:N and gid:N[:N...] (root only): the payload's uid and gids, primary first. */
  uid?: number;
  gids?: number[];
}

/** Stands for every capability in --add-caps, --drop-caps and `tsrun capability`. */
export const ALL_CAPS = 'ALL';

export function emptyPrivilegeRequest(): PrivilegeRequest {
  return { keepPrivs: false, noPrivs: false, addCaps: [], dropCaps: [] };
}

/** One capability name as the kernel spells it: case-insensitive, CAP_ prefix optional. */
export function normalCapability(name: string, what: string): string {
  const upper = name.trim().toUpperCase();
  if (upper === ALL_CAPS) return ALL_CAPS;
  const full = upper.startsWith('CAP_') ? upper : `CAP_${upper}`;
  if (!(CAPABILITIES as readonly string[]).includes(full)) {
    throw usageError(`${what}: unknown capability '${name.trim()}'`);
  }
  return full;
}

/** A comma-separated list of capabilities (from repeated flags too), without duplicates. */
export function parseCapabilityList(values: string[], what: string): string[] {
  const names = values
    .flatMap((v) => v.split(','))
    .filter((n) => n.trim() !== '')
    .map((n) => normalCapability(n, what));
  return [...new Set(names)];
}

/** ALL expanded to every capability tsrun knows; the others as they are. */
export function expandCapabilities(names: string[]): string[] {
  return names.includes(ALL_CAPS) ? [...CAPABILITIES] : names;
}

const ID = /^\d{1,10}$/;

function parseId(text: string, spec: string): number {
  const id = ID.test(text) ? Number(text) : NaN;
  if (!(id >= 0 && id < 0xffffffff)) {
    throw usageError(`--security '${spec}': '${text}' is not a uid or gid`);
  }
  return id;
}

type SecurityOptions = Pick<PrivilegeRequest, 'seccompProfile' | 'uid' | 'gids'>;

const SECURITY_FIELDS = new Map<string, keyof SecurityOptions>([
  ['seccomp', 'seccompProfile'],
  ['uid', 'uid'],
  ['gid', 'gids'],
]);

/** One --security value: seccomp:FILE, uid:N or gid:N[:N...]. */
function parseSecurityOption(spec: string, into: SecurityOptions): void {
  const colon = spec.indexOf(':');
  const kind = colon < 0 ? spec : spec.slice(0, colon);
  const value = colon < 0 ? '' : spec.slice(colon + 1);
  if (kind === 'apparmor' || kind === 'selinux') {
    throw usageError(`--security '${spec}': ${kind} is not supported by tsrun`);
  }
  const field = SECURITY_FIELDS.get(kind);
  if (field === undefined) {
    throw usageError(`--security '${spec}': unknown kind '${kind}' (seccomp, uid or gid)`);
  }
  if (value === '') throw usageError(`--security '${spec}': expected ${kind}:VALUE`);
  if (into[field] !== undefined) throw usageError(`--security: ${kind} is given twice`);
  if (kind === 'seccomp') into.seccompProfile = value;
  else if (kind === 'uid') into.uid = parseId(value, spec);
  else into.gids = value.split(':').map((g) => parseId(g, spec));
}

/** A comma that starts another --security value: a profile path may hold commas itself. */
const NEXT_SECURITY_VALUE = /,(?=(?:seccomp|uid|gid|apparmor|selinux):)/;

/** --security values, repeated or comma-separated. */
export function parseSecurityOptions(values: string[]): SecurityOptions {
  const out: SecurityOptions = {};
  for (const spec of values.flatMap((v) => v.split(NEXT_SECURITY_VALUE))) {
    parseSecurityOption(spec.trim(), out);
  }
  return out;
}

/** The command line's privilege flags, as the wrapper's option parser gives them. */
export interface PrivilegeFlags {
  keepPrivs?: boolean;
  /** false with --no-privs (the option parser reads --no-X as X = false). */
  privs?: boolean;
  addCaps?: string[];
  dropCaps?: string[];
  security?: string[];
}

export function privilegeRequest(flags: PrivilegeFlags): PrivilegeRequest {
  const request: PrivilegeRequest = {
    keepPrivs: flags.keepPrivs ?? false,
    noPrivs: flags.privs === false,
    addCaps: parseCapabilityList(flags.addCaps ?? [], '--add-caps'),
    dropCaps: parseCapabilityList(flags.dropCaps ?? [], '--drop-caps'),
    ...parseSecurityOptions(flags.security ?? []),
  };
  if (request.keepPrivs && request.noPrivs) {
    throw usageError('--keep-privs and --no-privs exclude each other');
  }
  checkRootOnly(request, process.getuid!());
  return request;
}

/** What only root may ask for, refused up front for anyone else (stage 1 checks again). */
export function checkRootOnly(request: PrivilegeRequest, uid: number): void {
  if (uid === 0) return;
  if (request.uid !== undefined || request.gids !== undefined) {
    throw usageError('--security uid and gid are for root only');
  }
  if (request.keepPrivs) throw usageError('--keep-privs is for root only');
}

type Obj = Record<string, unknown>;

function bad(field: string, what: string): Error {
  return usageError(`engine config: privileges.${field} must be ${what}`);
}

function boolField(obj: Obj, name: string): boolean {
  const v = obj[name] ?? false;
  if (typeof v !== 'boolean') throw bad(name, 'a boolean');
  return v;
}

function capsField(obj: Obj, name: string): string[] {
  const v = obj[name] ?? [];
  if (!Array.isArray(v) || !v.every((n) => typeof n === 'string')) {
    throw bad(name, 'an array of capability names');
  }
  return parseCapabilityList(v as string[], `privileges.${name}`);
}

const isId = (v: unknown): boolean => Number.isInteger(v) && (v as number) >= 0;

/** Checks the `privileges` part of a tsrun engine config (absent: nothing asked). */
export function parsePrivilegeRequest(value: unknown): PrivilegeRequest {
  if (value === undefined) return emptyPrivilegeRequest();
  if (typeof value !== 'object' || value === null) throw bad('', 'an object');
  const obj = value as Obj;
  const { seccompProfile, uid, gids } = obj;
  if (seccompProfile !== undefined && !(typeof seccompProfile === 'string' && seccompProfile)) {
    throw bad('seccompProfile', 'a path');
  }
  if (uid !== undefined && !isId(uid)) throw bad('uid', 'a uid');
  if (gids !== undefined && !(Array.isArray(gids) && gids.length > 0 && gids.every(isId))) {
    throw bad('gids', 'a non-empty array of gids');
  }
  const request: PrivilegeRequest = {
    keepPrivs: boolField(obj, 'keepPrivs'),
    noPrivs: boolField(obj, 'noPrivs'),
    addCaps: capsField(obj, 'addCaps'),
    dropCaps: capsField(obj, 'dropCaps'),
    seccompProfile: seccompProfile as string | undefined,
    uid: uid as number | undefined,
    gids: gids as number[] | undefined,
  };
  if (request.keepPrivs && request.noPrivs) throw bad('keepPrivs', 'false with noPrivs');
  return request;
}
