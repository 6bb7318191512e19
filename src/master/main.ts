#!/usr/bin/env node
// tsrun-starter: the starter, then the master of one container. Runs on the host as the caller.
// Wrappers hand it an engine config ({engineName, containerID, engineConfig}) on an inherited fd
// named by TSRUN_CONFIG_FD; for debugging it also takes a file: `tsrun-starter CONFIG.json`.
// It exits with the container's exit code, 128 + N when the payload died of signal N, and 255
// for its own errors.
import * as fs from 'node:fs';
import { errorMessage, wrap } from '../common/errors';
import { FORMAT_ENV, initLog, log, writeStderr } from '../common/log';
import { addon } from '../native/addon';
import { MAX_ENGINE_CONFIG } from '../engines/config';
import { initInstance, instanceFailed } from './instance';
import { SignalForwarder } from './signals';
import { runStarter } from './starter';

/** Reads the engine config from the fd (a file or a pipe) or the file named on the command line. */
function readEngineConfig(): Buffer {
  const file = process.argv[2];
  if (file !== undefined) return fs.readFileSync(file);
  const fdText = process.env.TSRUN_CONFIG_FD;
  if (fdText === undefined || !/^\d+$/.test(fdText)) {
    throw new Error('no engine config: set TSRUN_CONFIG_FD to an open fd, or give a file');
  }
  try {
    return readFd(Number(fdText));
  } catch (err) {
    throw wrap(err, `reading the engine config from fd ${fdText}`);
  }
}

function readFd(fd: number): Buffer {
  const chunks: Buffer[] = [];
  const buf = Buffer.alloc(64 * 1024);
  let size = 0;
  let pos = fs.fstatSync(fd).isFile() ? 0 : -1;
  for (;;) {
    const n = fs.readSync(fd, buf, 0, buf.length, pos < 0 ? null : pos);
    if (n === 0) break;
    if (pos >= 0) pos += n;
    size += n;
    if (size > MAX_ENGINE_CONFIG) {
      throw new Error(`engine config too large: over ${MAX_ENGINE_CONFIG} bytes`);
    }
    chunks.push(Buffer.from(buf.subarray(0, n)));
  }
  fs.closeSync(fd);
  return Buffer.concat(chunks);
}

/** The foreground process group of the terminal, to give back on exit. */
function rememberTerminal(): () => void {
  const fd = [0, 1, 2].find((f) => addon().tcgetpgrp(f) >= 0);
  if (fd === undefined) return () => {};
  const pgrp = addon().tcgetpgrp(fd);
  return () => {
    if (addon().tcgetpgrp(fd) !== pgrp) addon().tcsetpgrp(fd, pgrp);
  };
}

function fail(err: unknown): never {
  if (process.env[FORMAT_ENV] === 'json')
    log().error({ code: (err as { code?: string }).code }, errorMessage(err));
  else writeStderr(`tsrun: ${errorMessage(err)}\n`);
  log().debug({ stack: (err as Error).stack }, 'error');
  instanceFailed();
  process.exit((err as { exitCode?: number }).exitCode ?? 255);
}

/**
 * Runs the starter on an engine config in this process and exits with the container's code. The
 * tsrun CLI calls it directly once it has built the config, which saves a Node start.
 */
export function starterMain(readConfig: () => Buffer): void {
  const run = async () => {
    process.title = 'tsrun: starter';
    initLog('starter');
    initInstance();
    const signals = new SignalForwarder((signal) => process.exit(128 + signal));
    process.on('exit', rememberTerminal());
    process.exit(await runStarter(readConfig(), signals));
  };
  run().catch(fail);
}

if (require.main === module) starterMain(readEngineConfig);
