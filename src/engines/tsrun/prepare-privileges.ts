// Stage 1's decision on the payload's privileges: its uid and gids (--security uid/gid), its
// capability sets (Singularity 3.1's rules, within this process's bounding set), no_new_privs and
// the compiled seccomp filter. Runs on the host, as the caller; stage 2 applies the result.
import * as path from 'node:path';
import { usageError } from '../../common/errors';
import { log } from '../../common/log';
import { grantedTo, readGrants } from '../../config/capability-file';
import { CAPABILITIES } from '../../native/constants';
import type { CapabilityConfig, StarterConfig } from '../config';
import type { TsrunEngineConfig, UserInfo } from './config';
import {
  ALL_CAPS,
  emptyPrivilegeRequest,
  expandCapabilities,
  PrivilegeRequest,
} from './privileges';
import { loadSeccompProfile } from './seccomp';

export interface CapabilityInput {
  request: PrivilegeRequest;
  callerIsRoot: boolean;
  /** The payload runs as uid 0 (not with --security uid:N). */
  targetIsRoot: boolean;
  /** This process's bounding set: nothing outside it is ever asked for. */
  bounding: string[];
  /** capability.json's grants to the caller (their user and groups). */
  granted: string[];
  /** The admin's `root default capabilities` (full when absent). */
  rootDefault?: 'full' | 'file' | 'no';
  /** The caller, for messages: "user 'alice'". */
  who: string;
}

/**
 * What the payload should have before --drop-caps. Root starts from every capability (the
 * `root default capabilities = full` of Singularity; --keep-privs asks for the same), or from none
 * with --no-privs; a payload run as another uid starts from none unless --keep-privs. A non-root
 * caller gets only what --add-caps asks for among the admin's grants.
 */
function wantedCapabilities(input: CapabilityInput): string[] {
  const { request } = input;
  if (!input.callerIsRoot) {
    if (request.keepPrivs) throw usageError('--keep-privs is for root only');
    if (request.addCaps.includes(ALL_CAPS)) return input.granted;
    const refused = request.addCaps.find((c) => !input.granted.includes(c));
    if (refused !== undefined) {
      throw usageError(`--add-caps: ${refused} is not granted to ${input.who} (tsrun capability)`);
    }
    return request.addCaps;
  }
  const none = request.noPrivs || (!input.targetIsRoot && !request.keepPrivs);
  const rootDefault = request.keepPrivs ? 'full' : (input.rootDefault ?? 'full');
  const base = rootDefault === 'full' ? CAPABILITIES : rootDefault === 'file' ? input.granted : [];
  return [...(none ? [] : base), ...expandCapabilities(request.addCaps)];
}

/**
 * The payload's capability sets, and the capabilities asked for by name that the bounding set
 * lacks (not given). A root payload gets them through its bounding set (execve gives uid 0 the
 * bounding set as permitted); a payload of another uid keeps them as ambient capabilities.
 */
export function decideCapabilities(input: CapabilityInput): {
  caps: CapabilityConfig;
  outside: string[];
} {
  const drop = expandCapabilities(input.request.dropCaps);
  const wanted = wantedCapabilities(input).filter((c) => !drop.includes(c));
  const kept = CAPABILITIES.filter((c) => wanted.includes(c) && input.bounding.includes(c));
  const outside = input.request.addCaps.filter(
    (c) => c !== ALL_CAPS && !drop.includes(c) && !input.bounding.includes(c),
  );
  const carried = input.targetIsRoot ? [] : kept;
  return {
    caps: {
      bounding: kept,
      effective: kept,
      permitted: kept,
      inheritable: carried,
      ambient: carried,
    },
    outside,
  };
}

/** The payload's uid and gids: the caller's, or for root those of --security uid/gid. */
function setTargetIds(request: PrivilegeRequest, user: UserInfo, starter: StarterConfig): void {
  starter.targetUID = user.uid;
  starter.targetGIDs = user.groups.map((g) => g.gid);
  if (request.uid === undefined && request.gids === undefined) return;
  if (user.uid !== 0) throw usageError('--security uid and gid are for root only');
  starter.targetUID = request.uid ?? user.uid;
  starter.targetGIDs = request.gids ?? starter.targetGIDs;
}

/** Fills in the starter config's ids, capabilities, no_new_privs and seccomp filter. */
export function preparePrivileges(
  cfg: TsrunEngineConfig,
  starter: StarterConfig,
  bounding: string[],
  rootDefault: 'full' | 'file' | 'no' = 'full',
): void {
  const request = cfg.privileges ?? emptyPrivilegeRequest();
  const user = cfg.user!;
  const callerIsRoot = user.uid === 0;
  setTargetIds(request, user, starter);
  const groups = user.groups.map((g) => g.name);
  const { caps, outside } = decideCapabilities({
    request,
    callerIsRoot,
    targetIsRoot: starter.targetUID === 0,
    bounding,
    granted:
      callerIsRoot && rootDefault !== 'file' ? [] : grantedTo(readGrants(), user.name, groups),
    rootDefault,
    who: `user '${user.name}'`,
  });
  if (outside.length > 0) {
    log().warn({ capabilities: outside }, 'capabilities outside the bounding set are not given');
  }
  starter.capabilities = caps;
  if (request.seccompProfile !== undefined) {
    starter.seccomp = loadSeccompProfile(path.resolve(cfg.cwd, request.seccompProfile));
  }
  // The kernel loads a seccomp filter only for a thread with no_new_privs or CAP_SYS_ADMIN.
  const seccompNeedsIt = starter.seccomp !== undefined && !caps.effective.includes('CAP_SYS_ADMIN');
  starter.noNewPrivs = !callerIsRoot || starter.targetUID !== 0 || seccompNeedsIt;
  log().debug(
    { uid: starter.targetUID, gids: starter.targetGIDs, caps: caps.bounding.length },
    'privileges decided',
  );
}
