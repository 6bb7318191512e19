// The engines module: what the seed system's engines package offers. An engine is a set of
// operations, each run by one process: prepareConfig in stage 1; createContainer, postStartProcess,
// monitorContainer and cleanupContainer in the master; startProcess in stage 2; the engine's RPC
// methods in the RPC server (served by serveRuntimeEngineRequests).
import { usageError } from '../common/errors';
import type { ExitStatus } from '../native/addon';
import type { RpcClient } from '../rpc/client';
import type { ServeOptions } from '../rpc/server';
import { CommonConfig, parseCommonConfig, StarterConfig } from './config';

export type { CommonConfig, StarterConfig } from './config';

/** The container process as the master sees it. */
export interface ContainerProcess {
  pid: number; // host pid
  pidfd: number;
  /** The container process is pid 1 of its own pid namespace. */
  pidNamespaceInit: boolean;
  /**
   * Resolves once stage 2 has loaded everything it needs from the host's root (modules, the
   * addon and its libraries, tsrun-init): the container's root must not change before.
   */
  stage2Ready?: Promise<void>;
  /** The master's end of the RPC server's fd channel (SCM_RIGHTS), -1 or absent without one. */
  fdChannel?: number;
}

/** Signals the master received for the container, in order. */
export interface SignalSource {
  onSignal(listener: (signal: number) => void): void;
}

/** The master's connection to stage 2: stage 2 reads its configs from it and reports failures. */
export interface MasterConn {
  fd: number;
  starterConfig: StarterConfig;
  /** tsrun-init, opened before the root changed (-1: missing), for an init in a pid namespace. */
  initFd?: number;
}

export interface EngineOperations {
  /** The engine's own config (the `engineConfig` part), parsed. */
  config(): unknown;
  /** Parses and checks `common.engineConfig`; called by newEngine in every process. */
  initConfig(common: CommonConfig): void;
  /** Stage 1: checks the request against policy and fills in the starter config. */
  prepareConfig(starter: StarterConfig): Promise<void>;
  /** Master, before stage 2 starts: builds the container through the RPC server. */
  createContainer(container: ContainerProcess, rpc: RpcClient): Promise<void>;
  /** Stage 2: sets up the process and execs the payload; never returns on success. */
  startProcess(conn: MasterConn): Promise<never>;
  /** Master, optional: after createContainer, before stage 2 is let go. */
  preStartProcess?(container: ContainerProcess): Promise<void>;
  /** Master: after the payload was exec'd. */
  postStartProcess(container: ContainerProcess): Promise<void>;
  /** Master: forwards signals and waits for the container to exit. */
  monitorContainer(container: ContainerProcess, signals: SignalSource): Promise<ExitStatus>;
  /** Master: releases what the container held (also after a failed start). */
  cleanupContainer(): Promise<void>;
}

/** An engine: its operations and the common config. */
export class Engine {
  constructor(
    readonly ops: EngineOperations,
    readonly common: CommonConfig,
  ) {}
}

type EngineFactory = () => EngineOperations;
const registered = new Map<string, EngineFactory>();

/** Registers an engine's operations under its name. */
export function registerEngine(name: string, factory: EngineFactory): void {
  registered.set(name, factory);
}

/** Registers the engines tsrun ships. Their modules load their parts lazily, per stage. */
export function init(): void {
  if (registered.size > 0) return;
  registerEngine('tsrun', () => {
    const { TsrunEngine } = require('./tsrun') as typeof import('./tsrun');
    return new TsrunEngine();
  });
}

/**
 * Loads the modules of engine `name` now, for a stage whose root changes before it builds the
 * engine. Unknown names are left for newEngine to report.
 */
export function preloadEngine(name: string): void {
  init();
  registered.get(name)?.();
}

/**
 * Serves the RPC methods of engine `name` on `conn` until the peer closes it. The RPC layer is
 * loaded on first use: only the RPC server needs it.
 */
export function serveRuntimeEngineRequests(
  name: string,
  conn: import('node:net').Socket,
  options: ServeOptions = {},
): Promise<void> {
  const registry = require('../rpc/registry') as typeof import('../rpc/registry');
  return registry.serveRuntimeEngineRequests(name, conn, options);
}

/** The engine name of a serialized engine config. */
export function getName(bytes: Buffer | string): string {
  return parseCommonConfig(bytes).engineName;
}

/** Builds the engine named in a serialized engine config and initializes its config. */
export function newEngine(bytes: Buffer | string): Engine {
  init();
  const common = parseCommonConfig(bytes);
  const factory = registered.get(common.engineName);
  if (factory === undefined) {
    const known = [...registered.keys()].join(', ');
    throw usageError(`unknown engine '${common.engineName}' (known: ${known})`);
  }
  const ops = factory();
  ops.initConfig(common);
  return new Engine(ops, common);
}
