// Stage 1 for `exec|run|shell instance://NAME`: the container is the instance's, already built.
// No namespace is made and no RPC server runs: the clone joins the instance's namespaces (its user
// namespace first), forks once more to be in its pid namespace, and stage 2 enters its mount
// namespace. The payload runs with the ids and capabilities a run of the same user would get
// (those of the instance's user-namespace mode when it has one).
import * as fs from 'node:fs';
import { usageError } from '../../common/errors';
import { loadAdminConfig } from '../../config/admin';
import { processStartTime } from '../../instances/state';
import type { NamespaceKind } from '../../native/constants';
import type { StarterConfig } from '../config';
import type { TsrunEngineConfig, UserInfo } from './config';
import { adminSettings } from './policy';
import { preparePrivileges } from './prepare-privileges';
import { boundingCapabilities, currentUser } from './prepare';
import { fakeRootUser, giveNamespaceRoot } from './userns';

/** Joined in this order: the user namespace first, it owns the others. */
const JOINED: NamespaceKind[] = ['user', 'ipc', 'uts', 'net', 'cgroup', 'pid'];

/** A user's identity from the host's password and group files (root joining a user's instance). */
function userInfoOf(uid: number): UserInfo {
  const entry = fs
    .readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .map((l) => l.split(':'))
    .find((f) => f[2] === String(uid));
  if (entry === undefined) throw usageError(`uid ${uid} is not in /etc/passwd`);
  const [name, , , gidText, gecos, home, shell] = entry;
  const gid = Number(gidText);
  const groups = [{ gid, name: String(gid) }];
  for (const line of fs.readFileSync('/etc/group', 'utf8').split('\n')) {
    const [group, , g, members = ''] = line.split(':');
    if (g === undefined) continue;
    if (Number(g) === gid) groups[0].name = group;
    else if (members.split(',').includes(name)) groups.push({ gid: Number(g), name: group });
  }
  return { uid, gid, name, gecos, home, shell, groups };
}

function link(pid: number | 'self', kind: string): string {
  return fs.readlinkSync(`/proc/${pid}/ns/${kind}`);
}

export function prepareJoin(cfg: TsrunEngineConfig, starter: StarterConfig): void {
  const join = cfg.join!;
  const caller = currentUser();
  if (caller.uid !== 0 && caller.uid !== join.uid) {
    throw usageError(`instance '${join.name}' belongs to another user`);
  }
  // A pid the instance no longer holds (its master died, the machine rebooted) is not joined.
  if (processStartTime(join.pid) !== join.startTime) {
    throw usageError(`instance '${join.name}' is not running`);
  }
  if (fs.statSync(`/proc/${join.pid}`).uid !== join.uid && caller.uid !== 0) {
    throw usageError(`instance '${join.name}' belongs to another user`);
  }
  const admin = loadAdminConfig();
  cfg.admin = adminSettings(admin);
  // Its init is the instance's; this payload is a child of the process that joined.
  cfg.pidNamespace = false;
  cfg.noInit = true;
  starter.namespaces = {};
  starter.rpc = false;
  starter.joinNamespaces = [];
  for (const kind of JOINED) {
    if (link(join.pid, kind) !== link('self', kind)) {
      starter.joinNamespaces.push({ kind, path: `/proc/${join.pid}/ns/${kind}` });
    }
  }
  starter.joinMount = `/proc/${join.pid}/ns/mnt`;
  starter.forkAfterJoin = starter.joinNamespaces.some((n) => n.kind === 'pid');
  const userns = starter.joinNamespaces.some((n) => n.kind === 'user');
  cfg.userns = userns;
  const bounding = boundingCapabilities();
  if (!userns) {
    cfg.user = caller;
    preparePrivileges(cfg, starter, bounding, admin.rootDefaultCapabilities);
    return;
  }
  // The instance's maps hold its owner's ids (the caller's own, unless root joins a user's
  // instance): the payload runs as the owner would, or as root inside with --fakeroot.
  const owner = caller.uid === join.uid ? caller : userInfoOf(join.uid);
  // Groups cannot be set in there (setgroups is denied): root enters with the owner's.
  if (owner !== caller) starter.joinGroups = owner.groups.map((g) => g.gid);
  const fakeroot = cfg.fakeroot === true;
  cfg.user = fakeroot ? fakeRootUser() : owner;
  preparePrivileges({ ...cfg, user: owner }, starter, bounding, admin.rootDefaultCapabilities);
  starter.targetUID = fakeroot ? 0 : owner.uid;
  starter.targetGIDs = [fakeroot ? 0 : owner.gid];
  if (fakeroot) giveNamespaceRoot(starter, bounding);
}
