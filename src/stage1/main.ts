#!/usr/bin/env node
// Stage 1: runs on the host, as the caller, for a short time. It gets the engine config from the
// starter, runs the engine's prepareConfig (policy checks, namespaces, ids, capabilities) and sends
// back the prepared engine config and the starter config.
//
// Normal use: started by tsrun-starter with a socket at fd 3 (TSRUN_STAGE_FD).
// Debugging:  node dist/src/stage1/main.js CONFIG.json   prints the prepared configs as JSON.
import * as fs from 'node:fs';
import { errorMessage, toErrorData } from '../common/errors';
import { initLog, log, writeStderr } from '../common/log';
import { readMessageSync, writeMessageSync } from '../common/messages';
import { emptyStarterConfig, StarterConfig } from '../engines/config';
import { newEngine } from '../engines';

export interface Stage1Result {
  type: 'result';
  engineConfig: unknown;
  starterConfig: StarterConfig;
}

async function prepare(bytes: string): Promise<Stage1Result> {
  const engine = newEngine(bytes);
  initLog('stage1', engine.common.containerID);
  const starterConfig = emptyStarterConfig();
  await engine.ops.prepareConfig(starterConfig);
  log().debug(
    {
      namespaces: starterConfig.namespaces,
      uid: starterConfig.targetUID,
      gids: starterConfig.targetGIDs,
    },
    'configs prepared',
  );
  return { type: 'result', engineConfig: engine.common, starterConfig };
}

async function fromStarter(fd: number): Promise<void> {
  const request = readMessageSync(fd) as { engineConfig?: string } | null;
  if (request === null || typeof request.engineConfig !== 'string') {
    throw new Error('stage 1: no engine config received');
  }
  try {
    writeMessageSync(fd, await prepare(request.engineConfig));
  } catch (err) {
    writeMessageSync(fd, { type: 'error', error: toErrorData(err) });
  }
}

async function fromFile(file: string): Promise<void> {
  const result = await prepare(fs.readFileSync(file, 'utf8'));
  fs.writeSync(1, `${JSON.stringify(result, null, 2)}\n`);
}

async function main(): Promise<void> {
  process.title = 'tsrun: stage1';
  initLog('stage1');
  const file = process.argv[2];
  if (file !== undefined) return fromFile(file);
  const fd = process.env.TSRUN_STAGE_FD;
  if (fd === undefined) {
    throw new Error('no engine config: give a config file (stage 1 reads it from tsrun-starter)');
  }
  await fromStarter(Number(fd));
}

main().catch((err) => {
  writeStderr(`tsrun: stage1: ${errorMessage(err)}\n`);
  process.exit(255);
});
