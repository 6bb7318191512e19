// RPC server entry: a process of its own, inside the container's namespaces and privileged. It
// serves the engine's privileged operations to the master, then exits so that stage 2 can go on.
//
// Normal mode (started by the container process, see src/master/stages.ts):
//   the connected socket is at fd $TSRUN_RPC_FD (default 3), the engine is $TSRUN_ENGINE (default
//   'tsrun'); serves until the master closes the connection, then exits 0. A fatal problem (no
//   such fd, unknown engine, malformed frame) exits 1 with one line 'tsrun rpc: ...' on stderr.
//
// Debug mode (for engine developers, to drive an engine's methods at the protocol level):
//   node dist/src/rpc/main.js --socket /tmp/rpc.sock [--engine tsrun]
//   listens on that Unix socket path and serves each connection until SIGINT or SIGTERM (then
//   removes the socket file). It acts on the namespaces it was started in: run it under
//   `unshare -m` (and make '/' private with a first Mount call) to keep the host's mounts clean.
//
// Imports stay lean (each start of node counts): protocol, server, registry, the logger (which
// loads pino only when a record is written) and the one engine module that registers methods.
import * as fs from 'node:fs';
import * as net from 'node:net';
import { initLog, log, writeStderr } from '../common/log';
import { methodsOf, serveRuntimeEngineRequests } from './registry';
import type { CallRecord, ServeOptions } from './server';

/** Loads the module that registers an engine's methods, by engine name. */
const ENGINE_MODULES: Record<string, () => unknown> = {
  tsrun: () => require('../engines/tsrun/rpc-server'),
};

function fatal(message: string): never {
  writeStderr(`tsrun rpc: ${message}\n`);
  process.exit(1);
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Logs each call at verbose level; binary data is logged as its length. */
function logCall({ method, args, ms, error }: CallRecord): void {
  if (!log().enabled('verbose')) return;
  const shown: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(args)) {
    shown[key] = value instanceof Uint8Array ? `<${value.length} bytes>` : value;
  }
  const fields = { method, args: shown, ms: Math.round(ms * 1000) / 1000 };
  if (error === undefined) log().verbose(fields, 'rpc call');
  else log().verbose({ ...fields, code: error.code, error: error.message }, 'rpc call failed');
}

const options: ServeOptions = { onCall: logCall };

function loadEngine(engine: string): void {
  const load = Object.hasOwn(ENGINE_MODULES, engine) ? ENGINE_MODULES[engine] : undefined;
  if (load !== undefined) load();
  if (methodsOf(engine) === undefined) fatal(`engine '${engine}' has no RPC methods`);
}

async function serveFd(fdText: string, engine: string): Promise<void> {
  if (!/^\d+$/.test(fdText)) fatal(`TSRUN_RPC_FD '${fdText}' is not an fd number`);
  let conn: net.Socket;
  try {
    conn = new net.Socket({
      fd: Number(fdText),
      readable: true,
      writable: true,
      allowHalfOpen: true,
    });
  } catch (err) {
    fatal(`fd ${fdText} is not a usable socket: ${messageOf(err)}`);
  }
  try {
    await serveRuntimeEngineRequests(engine, conn, options);
  } catch (err) {
    fatal(messageOf(err));
  }
  process.exit(0);
}

function listen(path: string, engine: string): void {
  const server = net.createServer({ allowHalfOpen: true }, (conn) => {
    serveRuntimeEngineRequests(engine, conn, options).catch((err) => {
      writeStderr(`tsrun rpc: connection closed: ${messageOf(err)}\n`);
    });
  });
  server.on('error', (err) => fatal(`listening on '${path}': ${messageOf(err)}`));
  server.listen(path, () => writeStderr(`tsrun rpc: serving engine '${engine}' on '${path}'\n`));
  const stop = () => {
    server.close();
    fs.rmSync(path, { force: true });
    process.exit(0);
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

/** --socket PATH [--engine NAME], or nothing at all (normal mode). */
function parseArgs(argv: string[]): { socket?: string; engine?: string } {
  const parsed: { socket?: string; engine?: string } = {};
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i], argv[i + 1]];
    if ((flag !== '--socket' && flag !== '--engine') || value === undefined) {
      fatal('usage: main.js [--socket PATH [--engine NAME]]');
    }
    parsed[flag === '--socket' ? 'socket' : 'engine'] = value;
  }
  if (parsed.engine !== undefined && parsed.socket === undefined) fatal('--engine needs --socket');
  return parsed;
}

function main(): void {
  process.title = 'tsrun: rpc';
  const args = parseArgs(process.argv.slice(2));
  const engine = args.engine ?? process.env.TSRUN_ENGINE ?? 'tsrun';
  initLog('rpc', process.env.TSRUN_CID ?? '');
  // Files and directories are created with exactly the modes the master asks for.
  process.umask(0);
  loadEngine(engine);
  if (args.socket !== undefined) listen(args.socket, engine);
  else void serveFd(process.env.TSRUN_RPC_FD ?? '3', engine);
}

main();
