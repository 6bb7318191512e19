// Creating the container process: the starter clones it into its new namespaces (joining the ones
// given by path), writes its id maps while it waits, and lets it go. The clone forks the RPC server
// and execs stage 2; the RPC server is a child of stage 2, in the same namespaces.
import * as fs from 'node:fs';
import { wrap } from '../common/errors';
import { log } from '../common/log';
import type { IdMap, StarterConfig } from '../engines/config';
import type { ContainerProcess } from '../engines';
import { addon, CloneHandle } from '../native/addon';
import { NAMESPACES, NamespaceKind } from '../native/constants';
import { stageSpec } from './stages';

export interface StartedContainer extends ContainerProcess {
  /** The master's end of the master socket (stage 2 has the other at fd 3). */
  masterFd: number;
  /** The master's end of the RPC connection, -1 without an RPC server. */
  rpcFd: number;
}

export function namespaceFlags(starter: StarterConfig): number {
  let flags = 0;
  for (const [kind, on] of Object.entries(starter.namespaces)) {
    if (on) flags |= NAMESPACES[kind as NamespaceKind];
  }
  return flags;
}

function writeIdMaps(pid: number, starter: StarterConfig): void {
  const lines = (maps: IdMap[]) =>
    maps.map((m) => `${m.containerID} ${m.hostID} ${m.size}\n`).join('');
  if (starter.gidMap.length > 0) {
    fs.writeFileSync(`/proc/${pid}/setgroups`, 'deny');
    fs.writeFileSync(`/proc/${pid}/gid_map`, lines(starter.gidMap));
  }
  if (starter.uidMap.length > 0) fs.writeFileSync(`/proc/${pid}/uid_map`, lines(starter.uidMap));
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

/** Clones the container process (stage 2 and, when asked, the RPC server). */
export async function startContainer(
  engineName: string,
  cid: string,
  starter: StarterConfig,
): Promise<StartedContainer> {
  const [masterFd, stage2Fd] = addon().socketpair();
  const [rpcFd, rpcServerFd] = starter.rpc ? addon().socketpair() : [-1, -1];
  const joinFds = openNamespaces(starter);
  const env = { TSRUN_ENGINE: engineName, TSRUN_CID: cid, TSRUN_RPC: starter.rpc ? '1' : '0' };
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
      waitForRelease: true,
      main: stageSpec('stage2', stage2Fd, env),
      rpc: starter.rpc ? stageSpec('rpc', rpcServerFd, env) : undefined,
    });
  } finally {
    for (const fd of [stage2Fd, rpcServerFd, ...joinFds]) if (fd >= 0) addon().close(fd);
  }
  await releaseOrKill(handle, starter);
  log().debug({ hostPid: handle.pid, masterFd, rpcFd }, 'container process started');
  const pidNamespaceInit = starter.namespaces.pid === true;
  return { pid: handle.pid, pidfd: handle.pidfd, pidNamespaceInit, masterFd, rpcFd };
}
