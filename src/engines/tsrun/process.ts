// startProcess of the tsrun engine. Runs in stage 2, inside the container (its root already
// changed by the RPC server), as root until the ids and capabilities below are applied on this
// thread right before execve.
import { TsrunError } from '../../common/errors';
import { log } from '../../common/log';
import { addon, CapSets } from '../../native/addon';
import { CAPABILITIES } from '../../native/constants';
import { CapabilityConfig, inUserNamespace, StarterConfig } from '../config';
import * as fs from 'node:fs';
import { actionCommand, startCommand } from './actions';
import { buildEnvironment } from './environment';
import { formatInspect, inspectImage } from './inspect';
import type { TsrunEngineConfig } from './config';

export { CONTAINER_PATH } from './environment';

function tryChdir(dir: string): boolean {
  try {
    process.chdir(dir);
    return true;
  } catch {
    return false;
  }
}

/** --pwd, else the host's working directory when the container has it, else home, else '/'. */
export function enterWorkingDirectory(cfg: TsrunEngineConfig): string {
  if (cfg.pwd !== undefined) {
    if (!tryChdir(cfg.pwd)) {
      throw new TsrunError(`--pwd '${cfg.pwd}': no such directory in the container`, 'ENOENT');
    }
    return cfg.pwd;
  }
  for (const dir of [cfg.cwd, cfg.user?.home ?? '/', '/']) {
    if (tryChdir(dir)) return dir;
  }
  return '/';
}

function capNumber(name: string): number {
  const bit = (CAPABILITIES as readonly string[]).indexOf(name);
  if (bit < 0) throw new TsrunError(`unknown capability '${name}'`, 'EINVAL');
  return bit;
}

function capMask(names: string[]): bigint {
  return names.reduce((mask, name) => mask | (1n << BigInt(capNumber(name))), 0n);
}

/** Drops from the bounding set every capability the config does not keep. */
function applyBounding(caps: CapabilityConfig): void {
  const keep = capMask(caps.bounding);
  const last = addon().capLast();
  for (let cap = 0; cap <= last; cap++) {
    if ((keep & (1n << BigInt(cap))) === 0n && addon().capBoundingRead(cap)) {
      addon().capBoundingDrop(cap);
    }
  }
}

/** Groups, gid, uid (keeping capabilities across the uid change), then the capability sets. */
export function applyIdentity(starter: StarterConfig): void {
  const caps = starter.capabilities;
  applyBounding(caps);
  const gid = starter.targetGIDs[0];
  // In a user namespace the master denied setgroups: the payload keeps the user's groups.
  if (!inUserNamespace(starter)) addon().setgroups(starter.targetGIDs);
  if (gid !== undefined) addon().setresgid(gid, gid, gid);
  addon().setKeepCaps(true);
  addon().setresuid(starter.targetUID, starter.targetUID, starter.targetUID);
  addon().setKeepCaps(false);
  const sets: CapSets = {
    effective: capMask(caps.effective),
    permitted: capMask(caps.permitted),
    inheritable: capMask(caps.inheritable),
  };
  addon().capset(sets);
  addon().capAmbientClearAll();
  for (const name of caps.ambient) addon().capAmbientRaise(capNumber(name));
  if (starter.noNewPrivs) addon().setNoNewPrivs();
}

/** Sets up the payload's process and execs it; returns only by throwing. */
export function startProcess(cfg: TsrunEngineConfig, starter: StarterConfig, initFd = -1): never {
  if (cfg.action === 'inspect') {
    applyIdentity(starter);
    const result = inspectImage(cfg.image, cfg.inspect?.sif);
    const json = cfg.inspect?.json === true;
    fs.writeSync(1, json ? `${JSON.stringify(result, null, 2)}\n` : formatInspect(result));
    process.exit(0);
  }
  const environment = buildEnvironment(cfg);
  enterWorkingDirectory(cfg);
  const seccompFilter = starter.seccomp && {
    filter: Buffer.from(starter.seccomp.filter, 'base64'),
    flags: starter.seccomp.flags,
  };
  if (cfg.action === 'start')
    return startInstance(cfg, starter, environment, seccompFilter, initFd);
  const cmd = actionCommand(cfg.action, cfg.args, environment);
  applyIdentity(starter);
  const envp = Object.entries(cmd.env).map(([k, v]) => `${k}=${v}`);
  log().verbose({ argv0: cmd.argv[0], file: cmd.file, cwd: process.cwd() }, 'exec payload');
  // The filter goes to execve, which loads it on this thread as the last step before the exec.
  const seccomp = seccompFilter;
  if (cfg.pidNamespace && cfg.noInit !== true) {
    // tsrun-init is pid 1: it forks the payload, forwards signals and reaps orphans.
    if (initFd < 0)
      throw new TsrunError('tsrun-init is missing: rebuild tsrun (npm install)', 'ENOENT');
    const argv = ['tsrun-init', cmd.file, ...cmd.argv];
    return addon().execve('tsrun-init', argv, envp, seccomp, initFd);
  }
  return addon().execve(cmd.file, cmd.argv, envp, seccomp);
}

/**
 * An instance: tsrun-init --instance is pid 1 and stays (see addon/init), with the image's
 * startscript as its payload, or alone when the image has none.
 */
function startInstance(
  cfg: TsrunEngineConfig,
  starter: StarterConfig,
  environment: ReturnType<typeof buildEnvironment>,
  seccomp: Parameters<ReturnType<typeof addon>['execve']>[3],
  initFd: number,
): never {
  if (initFd < 0)
    throw new TsrunError('tsrun-init is missing: rebuild tsrun (npm install)', 'ENOENT');
  const cmd = startCommand(cfg.args, environment);
  applyIdentity(starter);
  const envp = Object.entries(cmd.env).map(([k, v]) => `${k}=${v}`);
  const argv = ['tsrun-init', '--instance', ...(cmd.file === '' ? [] : [cmd.file, ...cmd.argv])];
  log().verbose({ argv }, 'exec instance init');
  return addon().execve('tsrun-init', argv, envp, seccomp, initFd);
}
