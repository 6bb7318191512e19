// How the starter starts the other stages: every process comes from the addon's clone (the Node
// process is never forked), gets a fresh `node` on its entry script, a minimal environment and its
// socket at fd 3.
import * as path from 'node:path';
import { FORMAT_ENV, LEVEL_ENV } from '../common/log';
import { CONFIG_FILE_ENV } from '../config/admin';
import { ExecSpec } from '../native/addon';
import { SIGNALS } from '../native/constants';

const DIST = path.join(__dirname, '..');

export const ENTRY = {
  stage1: path.join(DIST, 'stage1', 'main.js'),
  stage2: path.join(DIST, 'stage2', 'main.js'),
  rpc: path.join(DIST, 'rpc', 'main.js'),
} as const;

/**
 * The environment of a stage: logging settings, the config file a root test names, and what the
 * stage is told; nothing else.
 */
export function stageEnv(extra: Record<string, string>): string[] {
  const env: Record<string, string> = { ...extra };
  for (const name of [LEVEL_ENV, FORMAT_ENV, CONFIG_FILE_ENV]) {
    const value = process.env[name];
    if (value !== undefined) env[name] = value;
  }
  return Object.entries(env).map(([k, v]) => `${k}=${v}`);
}

/** A stage's exec spec: node on its entry script, `sock` at fd 3, killed if the master dies. */
export function stageSpec(
  entry: keyof typeof ENTRY,
  sock: number,
  env: Record<string, string>,
): ExecSpec {
  return {
    path: process.execPath,
    argv: [process.execPath, ENTRY[entry]],
    envp: stageEnv({ TSRUN_STAGE_FD: '3', TSRUN_RPC_FD: '3', ...env }),
    fds: [{ fd: sock, target: 3 }],
    pdeathSignal: SIGNALS.SIGKILL,
  };
}
