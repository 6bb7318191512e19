// The starter's sequence (DESIGN.md, "Order of events"): stage 1, the container process, then as
// master: createContainer through the RPC server, start stage 2, postStartProcess,
// monitorContainer, cleanupContainer. Returns the container's exit code (128 + N for signal N).
import * as net from 'node:net';
import { ErrorData, fromErrorData, TsrunError, withContext } from '../common/errors';
import { log, LogRecord } from '../common/log';
import { readMessages } from '../common/messages';
import { Engine, newEngine } from '../engines';
import type { StarterConfig } from '../engines/config';
import { parseCommonConfig } from '../engines/config';
import { addon } from '../native/addon';
import type { RpcClient } from '../rpc/client';
import { startContainer, StartedContainer } from './container';
import { instanceStarted } from './instance';
import { SignalForwarder } from './signals';
import { runStage1 } from './stage1';

type Stage2Message =
  { type: 'ready' } | { type: 'log'; record: LogRecord } | { type: 'error'; error: ErrorData };

/** The master's side of the master socket: stage 2's records, errors and readiness. */
interface Stage2Link {
  /** Resolves once stage 2 has loaded all it needs: the root may change under it from then on. */
  ready: Promise<void>;
  /** Sends the start message; resolves when stage 2 exec'd the payload (or rejects: it died). */
  start(engine: Engine, starter: StarterConfig): Promise<void>;
}

/** Listens to stage 2 from the moment it is cloned. */
function linkStage2(c: StartedContainer): Stage2Link {
  const sock = new net.Socket({ fd: c.masterFd, readable: true, writable: true });
  let failure: TsrunError | undefined;
  let markReady!: () => void;
  let notReady!: (err: Error) => void;
  const ready = new Promise<void>((resolve, reject) => {
    markReady = resolve;
    notReady = reject;
  });
  ready.catch(() => undefined); // a stage 2 that died before is reported by start()
  const ended = new Promise<void>((resolve, reject) => {
    readMessages(
      sock,
      (m) => {
        const msg = m as Stage2Message;
        if (msg.type === 'ready') markReady();
        else if (msg.type === 'log') log().emit(msg.record);
        else if (msg.type === 'error') failure = fromErrorData(msg.error, 'stage 2');
      },
      (err) => {
        sock.destroy();
        const why = failure ?? err;
        notReady(why ?? new TsrunError('stage 2 ended before it was ready', 'ECHILD'));
        if (why !== undefined) reject(why);
        else resolve();
      },
    );
  });
  ended.catch(() => undefined);
  return {
    ready,
    start(engine, starter) {
      const msg = { type: 'start', engineConfig: engine.common, starterConfig: starter };
      sock.write(`${JSON.stringify(msg)}\n`);
      return ended;
    },
  };
}

async function createContainer(c: StartedContainer, engine: Engine): Promise<void> {
  const sock = new net.Socket({ fd: c.rpcFd, readable: true, writable: true });
  const rpc: RpcClient = new (loadRpcClient())(sock);
  try {
    await engine.ops.createContainer(c, rpc);
  } finally {
    await rpc.close();
  }
}

/** The RPC client's modules (msgpackr above all), loaded while stage 1 starts. */
function loadRpcClient(): typeof RpcClient {
  return (require('../rpc/client') as typeof import('../rpc/client')).RpcClient;
}

async function killContainer(c: StartedContainer): Promise<void> {
  try {
    process.kill(c.pid, 'SIGKILL');
  } catch {
    // Already gone.
  }
  await addon().waitPidfd(c.pidfd);
}

function exitCode(status: { code: number | null; signal: number | null }): number {
  return status.signal !== null ? 128 + status.signal : (status.code ?? 255);
}

/** Runs one container from a serialized engine config. */
export async function runStarter(bytes: Buffer, signals: SignalForwarder): Promise<number> {
  const cid = parseCommonConfig(bytes).containerID;
  log().setContainerID(cid);
  newEngine(bytes);
  const stage1 = runStage1(bytes.toString(), cid);
  loadRpcClient();
  const prepared = await stage1;
  const engine = newEngine(JSON.stringify(prepared.engineConfig));
  const starter = prepared.starterConfig;
  const c = await startContainer(engine.common.engineName, cid, starter);
  process.title = 'tsrun: master';
  log().setStage('master');
  const stage2 = linkStage2(c);
  c.stage2Ready = stage2.ready;
  try {
    try {
      if (c.rpcFd >= 0)
        await withContext('creating the container', () => createContainer(c, engine));
    } finally {
      if (c.fdChannel >= 0) addon().close(c.fdChannel);
    }
    await engine.ops.preStartProcess?.(c);
    await stage2.start(engine, starter);
  } catch (err) {
    await killContainer(c);
    await engine.ops.cleanupContainer();
    throw err;
  }
  signals.payloadStarted();
  await engine.ops.postStartProcess(c);
  instanceStarted(c, engine);
  const status = await engine.ops.monitorContainer(c, signals);
  await engine.ops.cleanupContainer();
  return exitCode(status);
}
