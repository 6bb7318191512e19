// Creating the container process: the starter clones it into its new namespaces (joining the ones
// given by path), writes its id maps while it waits, and lets it go. The clone forks the RPC server
// and execs stage 2; the RPC server is a child of stage 2, in the same namespaces.
import * as fs from 'node:fs';
import { wrap } from '../common/errors';
import { userNamespacesUnavailable } from '../common/userns';
import { log } from '../common/log';
import { IdMap, inUserNamespace, StarterConfig } from '../engines/config';
import type { ContainerProcess } from '../engines';
import { addon, CloneHandle, ExecSpec } from '../native/addon';
import { CAPABILITIES, NAMESPACES, NamespaceKind } from '../native/constants';
import { stageSpec } from './stages';

export interface StartedContainer extends ContainerProcess {
  /** The master's end of the master socket (stage 2 has the other at fd 3). */
  masterFd: number;
  /** The master's end of the RPC connection, -1 without an RPC server. */
  rpcFd: number;
  /**
   * The master's end of the RPC server's fd channel (its fd 4), -1 without an RPC server: open
   * files the server hands over (a FUSE device it mounted) come through it with SCM_RIGHTS.
   */
  fdChannel: number;
}

export function namespaceFlags(starter: StarterConfig): number {
  let flags = 0;
  for (const [kind, on] of Object.entries(starter.namespaces)) {
    if (on) flags |= NAMESPACES[kind as NamespaceKind];
  }
  return flags;
}

function writeIdMaps(pid: number, starter: StarterConfig): void {
  if (starter.idMapHelpers === true) return runIdMapHelpers(pid, starter);
  const lines = (maps: IdMap[]) =>
    maps.map((m) => `${m.containerID} ${m.hostID} ${m.size}\n`).join('');
  if (starter.gidMap.length > 0) {
    fs.writeFileSync(`/proc/${pid}/setgroups`, 'deny');
    fs.writeFileSync(`/proc/${pid}/gid_map`, lines(starter.gidMap));
  }
  if (starter.uidMap.length > 0) fs.writeFileSync(`/proc/${pid}/uid_map`, lines(starter.uidMap));
}

/** newgidmap and newuidmap write the ranges of /etc/subgid and /etc/subuid (they check them). */
function runIdMapHelpers(pid: number, starter: StarterConfig): void {
  const { spawnSync } = require('node:child_process') as typeof import('node:child_process');
  const maps: [string, IdMap[]][] = [
    ['newgidmap', starter.gidMap],
    ['newuidmap', starter.uidMap],
  ];
  for (const [tool, map] of maps) {
    const args = map.flatMap((m) => [m.containerID, m.hostID, m.size].map(String));
    const r = spawnSync(tool, [String(pid), ...args], { encoding: 'utf8' });
    if (r.status !== 0) {
      const why = (r.error?.message ?? r.stderr).trim().replace(/\s*\n\s*/g, ' ');
      throw new Error(`${tool} ${args.join(' ')}: ${why}`);
    }
  }
}

function openNamespaces(starter: StarterConfig): number[] {
  return starter.joinNamespaces.map((ns) => fs.openSync(ns.path, fs.constants.O_RDONLY));
}

async function releaseOrKill(handle: CloneHandle, starter: StarterConfig): Promise<void> {
  try {
    writeIdMaps(handle.pid, starter);
    await addon().release(handle);
  } catch (err) {
    addon().abort(handle);
    try {
      process.kill(handle.pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
    await addon().waitPidfd(handle.pidfd);
    addon().close(handle.pidfd);
    throw wrap(err, 'starting the container process');
  }
}

/**
 * In a new user namespace the stages run as the user's (mapped) uid, and execve drops the
 * capabilities the clone gave them there unless they are ambient: the RPC server keeps what its
 * mounts need, stage 2 what it needs to set the payload's ids and capabilities.
 */
const RPC_CAPS = [
  'CAP_SYS_ADMIN',
  'CAP_SYS_CHROOT',
  'CAP_DAC_OVERRIDE',
  'CAP_DAC_READ_SEARCH',
  'CAP_FOWNER',
  'CAP_CHOWN',
  'CAP_SETUID',
  'CAP_SETGID',
  'CAP_NET_ADMIN',
];
const STAGE2_CAPS = ['CAP_SETPCAP', 'CAP_SETUID', 'CAP_SETGID'];
/** Joining an instance, stage 2 enters its mount namespace itself: setns needs these there. */
const JOIN_CAPS = [...STAGE2_CAPS, 'CAP_SYS_ADMIN', 'CAP_SYS_CHROOT'];

/** Where stage 2 finds the mount namespace of the instance it joins. */
export const JOIN_MOUNT_FD = 5;

function withAmbient(spec: ExecSpec, starter: StarterConfig, caps: string[]): ExecSpec {
  if (!inUserNamespace(starter)) return spec;
  const numbers = caps.map((c) => (CAPABILITIES as readonly string[]).indexOf(c));
  return { ...spec, ambientCaps: numbers };
}

/** The clear error for a user namespace the kernel refused (a limit or policy stage 1 missed). */
function userNamespaceRefused(err: unknown, starter: StarterConfig): Error | undefined {
  const code = (err as { code?: string }).code;
  if (starter.namespaces.user !== true || !['EPERM', 'ENOSPC', 'EUSERS'].includes(code ?? '')) {
    return undefined;
  }
  const why = userNamespacesUnavailable(process.getuid!() === 0);
  return wrap(
    err,
    why ??
      'the kernel refused to create a user namespace (user.max_user_namespaces, or a security module)',
  );
}

/** The RPC server's exec spec: its connection at fd 3, the fd channel at fd 4. */
function rpcSpec(sock: number, channel: number, env: Record<string, string>): ExecSpec {
  const spec = stageSpec('rpc', sock, { ...env, TSRUN_FD_CHANNEL: '4' });
  return { ...spec, fds: [...spec.fds, { fd: channel, target: 4 }] };
}

/** Clones the container process (stage 2 and, when asked, the RPC server). */
export async function startContainer(
  engineName: string,
  cid: string,
  starter: StarterConfig,
): Promise<StartedContainer> {
  const [masterFd, stage2Fd] = addon().socketpair();
  const [rpcFd, rpcServerFd] = starter.rpc ? addon().socketpair() : [-1, -1];
  const [fdChannel, rpcChannelFd] = starter.rpc ? addon().socketpair() : [-1, -1];
  const joinFds = openNamespaces(starter);
  const mountFd =
    starter.joinMount === undefined ? -1 : fs.openSync(starter.joinMount, fs.constants.O_RDONLY);
  const env: Record<string, string> = {
    TSRUN_ENGINE: engineName,
    TSRUN_CID: cid,
    TSRUN_RPC: starter.rpc ? '1' : '0',
  };
  let stage2 = withAmbient(stageSpec('stage2', stage2Fd, env), starter, STAGE2_CAPS);
  if (mountFd >= 0) {
    const spec = stageSpec('stage2', stage2Fd, {
      ...env,
      TSRUN_JOIN_MOUNT_FD: String(JOIN_MOUNT_FD),
    });
    const withMount = { ...spec, fds: [...spec.fds, { fd: mountFd, target: JOIN_MOUNT_FD }] };
    // Root joining a user's instance is no id of its user namespace: only ambient capabilities
    // cross the exec there, so they carry what the payload is to be given too (--fakeroot).
    const payload = starter.capabilities.permitted;
    stage2 = withAmbient(withMount, starter, [...new Set([...JOIN_CAPS, ...payload])]);
  }
  const flags = namespaceFlags(starter);
  log().verbose(
    {
      namespaces: Object.keys(starter.namespaces).filter(
        (k) => starter.namespaces[k as NamespaceKind],
      ),
      join: starter.joinNamespaces,
    },
    'creating namespaces',
  );
  let handle: CloneHandle;
  try {
    handle = addon().cloneExec({
      flags,
      joinNs: joinFds,
      forkAfterJoin: starter.forkAfterJoin === true,
      groups: starter.joinGroups,
      waitForRelease: true,
      main: stage2,
      rpc: starter.rpc
        ? withAmbient(rpcSpec(rpcServerFd, rpcChannelFd, env), starter, RPC_CAPS)
        : undefined,
    });
  } catch (err) {
    throw userNamespaceRefused(err, starter) ?? err;
  } finally {
    for (const fd of [stage2Fd, rpcServerFd, rpcChannelFd, mountFd, ...joinFds]) {
      if (fd >= 0) addon().close(fd);
    }
  }
  await releaseOrKill(handle, starter);
  log().debug({ hostPid: handle.pid, masterFd, rpcFd }, 'container process started');
  const pidNamespaceInit = starter.namespaces.pid === true;
  return { pid: handle.pid, pidfd: handle.pidfd, pidNamespaceInit, masterFd, rpcFd, fdChannel };
}
