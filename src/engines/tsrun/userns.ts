// The user-namespace mode of stage 1: for a caller who is not root (or root with -u/--userns,
// and --fakeroot), the container gets a user namespace of its own with one mapping, the caller's
// uid and gid (to 0 with --fakeroot), and setgroups denied. Nothing here needs privilege.
import * as fs from 'node:fs';
import { usageError } from '../../common/errors';
import { userNamespacesUnavailable } from '../../common/userns';
import type { StarterConfig } from '../config';
import type { TsrunEngineConfig, UserInfo } from './config';

interface Range {
  start: number;
  count: number;
}

/** The first range of `file` (/etc/subuid or /etc/subgid) for the user, by name or id. */
function firstRange(file: string, name: string, id: number): Range | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  for (const line of text.split('\n')) {
    const [who, start, count] = line.trim().split(':');
    if ((who === name || who === String(id)) && Number(count) > 0) {
      return { start: Number(start), count: Number(count) };
    }
  }
  return undefined;
}

/**
 * The user's subordinate uid and gid ranges, when both exist and newuidmap and newgidmap are
 * installed (Debian's uidmap): undefined means a single mapping.
 */
export function subordinateRanges(user: UserInfo): { uid: Range; gid: Range } | undefined {
  const uid = firstRange('/etc/subuid', user.name, user.uid);
  const gid = firstRange('/etc/subgid', user.name, user.uid);
  const helpers = ['newuidmap', 'newgidmap'].every((tool) =>
    (process.env.PATH ?? '/usr/bin:/bin')
      .split(':')
      .some((dir) => dir !== '' && fs.existsSync(`${dir}/${tool}`)),
  );
  return uid !== undefined && gid !== undefined && helpers ? { uid, gid } : undefined;
}

/** Whether this run uses the user-namespace mode. */
export function wantsUserNamespace(cfg: TsrunEngineConfig, uid: number): boolean {
  return uid !== 0 || cfg.userns === true || cfg.fakeroot === true;
}

/** Root's identity inside with --fakeroot; its home is the caller's home, bound at /root. */
export function fakeRootUser(): UserInfo {
  return {
    uid: 0,
    gid: 0,
    name: 'root',
    gecos: 'root',
    home: '/root',
    shell: '/bin/sh',
    groups: [{ gid: 0, name: 'root' }],
  };
}

/** Why squashfuse cannot serve images for this user; undefined when it can. */
function squashfuseMissing(): string | undefined {
  const found = (process.env.PATH ?? '/usr/bin:/bin')
    .split(':')
    .some((dir) => dir !== '' && fs.existsSync(`${dir}/squashfuse`));
  if (!found) return 'squashfuse is not installed (Debian: apt-get install squashfuse)';
  try {
    fs.accessSync('/dev/fuse', fs.constants.R_OK | fs.constants.W_OK);
  } catch {
    return '/dev/fuse cannot be opened by this user (an admin makes it mode 0666)';
  }
  return undefined;
}

/** Checks what the mode cannot do yet; says so plainly. */
function checkSupported(cfg: TsrunEngineConfig): void {
  const source = cfg.source!;
  const what = (s: typeof source) =>
    s.format === 'sif' ? `a SIF file with an ${s.fstype} partition` : `an ${s.format} file`;
  if (source.fstype === 'ext3') {
    throw usageError(
      `image '${cfg.image}' is ${what(source)}: without root (user-namespace mode) tsrun runs sandbox directories, squashfs and SIF files with a squashfs partition only so far`,
    );
  }
  if (source.fstype === 'squashfs') {
    const why = squashfuseMissing();
    if (why !== undefined) {
      throw usageError(
        `image '${cfg.image}': without root it is mounted with squashfuse, but ${why}`,
      );
    }
  }
  for (const overlay of cfg.overlays ?? []) {
    if (overlay.source?.format !== 'sandbox') {
      throw usageError(
        `--overlay '${overlay.path}': without root (user-namespace mode) only directories can be overlays so far`,
      );
    }
  }
  if (cfg.writable) {
    throw usageError('--writable: not supported without root (user-namespace mode) yet');
  }
}

/**
 * Sets up the user namespace: the mappings, the payload's ids (the caller's, or root's with
 * --fakeroot) and, with --fakeroot, root's identity and capabilities inside.
 */
export function prepareUserNamespace(
  cfg: TsrunEngineConfig,
  starter: StarterConfig,
  caller: UserInfo,
  bounding: string[],
): void {
  const why = userNamespacesUnavailable(caller.uid === 0);
  if (why !== undefined) throw usageError(why);
  checkSupported(cfg);
  const fakeroot = cfg.fakeroot === true;
  const inside = { uid: fakeroot ? 0 : caller.uid, gid: fakeroot ? 0 : caller.gid };
  starter.namespaces.user = true;
  starter.uidMap = [{ containerID: inside.uid, hostID: caller.uid, size: 1 }];
  starter.gidMap = [{ containerID: inside.gid, hostID: caller.gid, size: 1 }];
  const ranges = fakeroot && caller.uid !== 0 ? subordinateRanges(caller) : undefined;
  if (ranges !== undefined) {
    // Ids 1 and up inside come from the user's ranges: chown works for package managers.
    starter.uidMap.push({ containerID: 1, hostID: ranges.uid.start, size: ranges.uid.count });
    starter.gidMap.push({ containerID: 1, hostID: ranges.gid.start, size: ranges.gid.count });
    starter.idMapHelpers = true;
  }
  starter.targetUID = inside.uid;
  starter.targetGIDs = [inside.gid];
  if (fakeroot) giveNamespaceRoot(starter, bounding);
}

/** Root of its own user namespace: every capability there (none on the host). */
export function giveNamespaceRoot(starter: StarterConfig, bounding: string[]): void {
  starter.capabilities = {
    bounding,
    effective: bounding,
    permitted: bounding,
    inheritable: [],
    ambient: [],
  };
  starter.noNewPrivs = false;
}

/** With --fakeroot the user is root inside, with the caller's home bound at /root. */
export function fakerootIdentity(cfg: TsrunEngineConfig, caller: UserInfo): UserInfo {
  if (cfg.homeBind === undefined && cfg.noHome !== true) {
    cfg.homeBind = { source: caller.home, destination: '/root' };
  }
  return fakeRootUser();
}
