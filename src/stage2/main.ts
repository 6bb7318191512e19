#!/usr/bin/env node
// Stage 2: the container process. Cloned by the starter into the container's namespaces, it starts
// while the RPC server (its child) builds the container. It loads all it needs first (the RPC
// server's pivot_root changes the root under it), then waits for the master's start message and
// for the RPC server to exit, then runs the engine's startProcess, which execs the payload.
// Failures go to the master as data on the master socket (fd 3) before exiting; its log records
// too, since pino cannot be loaded once the root has changed.
//
// Debugging: run with TSRUN_LOG_LEVEL=debug; `ps` shows it as 'tsrun: stage2' until the exec.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { toErrorData, TsrunError } from '../common/errors';
import { initLog, LogRecord, writeStderr } from '../common/log';
import { readMessageSync, writeMessageSync } from '../common/messages';
import type { StarterConfig } from '../engines/config';
import { newEngine, preloadEngine } from '../engines';
import { addon } from '../native/addon';
import { CLONE } from '../native/constants';

interface StartMessage {
  type: 'start';
  engineConfig: unknown;
  starterConfig: StarterConfig;
}

const fd = Number(process.env.TSRUN_STAGE_FD ?? 3);

/** tsrun-init (addon/init), built beside the addon: pid 1 for payloads in a pid namespace. */
const INIT_PROGRAM = path.join(__dirname, '..', '..', '..', 'build', 'Release', 'tsrun-init');

/**
 * Opens tsrun-init while the host's root is still this process's root (the RPC server changes
 * it); -1 when it is missing, which startProcess reports only if it needs it.
 */
function openInitProgram(): number {
  try {
    return fs.openSync(INIT_PROGRAM, 'r'); // libuv opens every fd close-on-exec;
  } catch {
    return -1;
  }
}

function send(message: unknown): void {
  try {
    writeMessageSync(fd, message);
  } catch {
    // The master is gone; pdeathsig ends this process anyway.
  }
}

function readStart(): StartMessage {
  const msg = readMessageSync(fd) as StartMessage | null;
  if (msg === null) throw new TsrunError('the master closed the connection before start', 'EPIPE');
  if (msg.type !== 'start') throw new TsrunError(`unexpected message '${msg.type}'`, 'EPROTO');
  return msg;
}

/**
 * Joining an instance: enters its mount namespace, on this thread (the one that execs), now that
 * every module is loaded from the host. setns into a mount namespace needs a thread whose root
 * and working directory are its own: Node's threads share them until unshare(CLONE_FS).
 */
function enterJoinedMountNamespace(): void {
  const text = process.env.TSRUN_JOIN_MOUNT_FD;
  if (text === undefined) return;
  const mountFd = Number(text);
  addon().unshare(CLONE.FS);
  addon().setns(mountFd, CLONE.NEWNS);
  addon().close(mountFd);
}

/** The RPC server is this process's only child: reap it and check it succeeded. */
function reapRpcServer(): void {
  if (process.env.TSRUN_RPC !== '1') return;
  const status = addon().waitPid(-1);
  if (status.code !== 0) {
    const how = status.signal !== null ? `signal ${status.signal}` : `code ${status.code}`;
    throw new TsrunError(`the RPC server failed (${how})`, 'ECHILD');
  }
}

async function main(): Promise<void> {
  process.title = 'tsrun: stage2';
  // The master socket must not reach the payload: its closing on exec tells the master it worked.
  addon().setCloexec(fd, true);
  initLog('stage2', process.env.TSRUN_CID ?? '', (record: LogRecord) =>
    send({ type: 'log', record }),
  );
  preloadEngine(process.env.TSRUN_ENGINE ?? 'tsrun');
  const initFd = openInitProgram();
  // All of the host's files it needs are loaded or open: the RPC server may change the root now.
  send({ type: 'ready' });
  const start = readStart();
  reapRpcServer();
  enterJoinedMountNamespace();
  const engine = newEngine(JSON.stringify(start.engineConfig));
  await engine.ops.startProcess({ fd, starterConfig: start.starterConfig, initFd });
}

main().catch((err) => {
  send({ type: 'error', error: toErrorData(err) });
  if (process.env.TSRUN_STAGE_FD === undefined) writeStderr(`tsrun: stage2: ${String(err)}\n`);
  process.exit(255);
});
