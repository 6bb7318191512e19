// The tsrun engine: images run the way Singularity runs them. Each operation loads the module of
// the stage that runs it, so that each stage's entry script stays lean.
import * as fs from 'node:fs';
import type { ExitStatus } from '../../native/addon';
import { log } from '../../common/log';
import type { RpcClient } from '../../rpc/client';
import type { CommonConfig, StarterConfig } from '../config';
import type { ContainerProcess, EngineOperations, MasterConn, SignalSource } from '../index';
import { parseTsrunConfig, TsrunEngineConfig } from './config';
// Loaded up front: stage 2 runs it after the RPC server changed the root under it.
import { startProcess } from './process';

export const NAME = 'tsrun';

export class TsrunEngine implements EngineOperations {
  private cfg!: TsrunEngineConfig;
  /** fds of the image locks (locks.ts), held until cleanup. */
  private locks: number[] = [];

  config(): TsrunEngineConfig {
    return this.cfg;
  }

  initConfig(common: CommonConfig): void {
    this.cfg = parseTsrunConfig(common.engineConfig);
    common.engineConfig = this.cfg;
  }

  async prepareConfig(starter: StarterConfig): Promise<void> {
    const { prepareConfig } = require('./prepare') as typeof import('./prepare');
    prepareConfig(this.cfg, starter);
  }

  async createContainer(_container: ContainerProcess, rpc: RpcClient): Promise<void> {
    const { lockImages } = require('./locks') as typeof import('./locks');
    this.locks = lockImages(this.cfg);
    const { createContainer } = require('./create') as typeof import('./create');
    await createContainer(this.cfg, rpc, log());
  }

  async startProcess(conn: MasterConn): Promise<never> {
    return startProcess(this.cfg, conn.starterConfig);
  }

  async postStartProcess(container: ContainerProcess): Promise<void> {
    log().verbose(
      { hostPid: container.pid, argv0: this.cfg.args[0] ?? this.cfg.action },
      'payload started',
    );
  }

  async monitorContainer(container: ContainerProcess, signals: SignalSource): Promise<ExitStatus> {
    const { forwardAndWait } = require('../monitor') as typeof import('../monitor');
    return forwardAndWait(container, signals);
  }

  /**
   * Mounts live in the container's mount namespace and vanish with it (loop devices detach with
   * their mounts): only the image locks are left to release.
   */
  async cleanupContainer(): Promise<void> {
    log().debug({ locks: this.locks.length }, 'cleanup');
    for (const fd of this.locks) fs.closeSync(fd);
    this.locks = [];
  }
}
