// The tsrun engine: images run the way Singularity runs them. Each operation loads the module of
// the stage that runs it, so that each stage's entry script stays lean.
import * as fs from 'node:fs';
import type { ExitStatus } from '../../native/addon';
import { withContext } from '../../common/errors';
import { log } from '../../common/log';
import type { RpcClient } from '../../rpc/client';
import type { CommonConfig, StarterConfig } from '../config';
import type { ContainerProcess, EngineOperations, MasterConn, SignalSource } from '../index';
import type { ContainerCgroup } from './cgroups';
import type { FuseDaemon } from './create';
import { parseTsrunConfig, TsrunEngineConfig } from './config';
// Loaded up front: stage 2 runs it after the RPC server changed the root under it.
import { startProcess } from './process';

export const NAME = 'tsrun';

export class TsrunEngine implements EngineOperations {
  private cfg!: TsrunEngineConfig;
  /** fds of the image locks (locks.ts), held until cleanup. */
  private locks: number[] = [];
  private containerID = '';
  /** FUSE daemons (squashfuse, fuse-overlayfs) serving the container's root, stopped at cleanup. */
  private fuse: FuseDaemon[] = [];
  /** The container's cgroup (--apply-cgroups), removed at cleanup. */
  private cgroup: ContainerCgroup | undefined;

  config(): TsrunEngineConfig {
    return this.cfg;
  }

  initConfig(common: CommonConfig): void {
    this.cfg = parseTsrunConfig(common.engineConfig);
    this.containerID = common.containerID;
    common.engineConfig = this.cfg;
  }

  async prepareConfig(starter: StarterConfig): Promise<void> {
    const { prepareConfig } = require('./prepare') as typeof import('./prepare');
    prepareConfig(this.cfg, starter);
  }

  async createContainer(container: ContainerProcess, rpc: RpcClient): Promise<void> {
    const { lockImages } = require('./locks') as typeof import('./locks');
    this.locks = lockImages(this.cfg);
    const { createContainer } = require('./create') as typeof import('./create');
    await createContainer(
      this.cfg,
      rpc,
      log(),
      container.stage2Ready,
      container.fdChannel,
      this.fuse,
      container.pid,
    );
  }

  /**
   * Puts the container process in its cgroup before stage 2 is let go: the payload and all it
   * starts are held to the limits; the Node start-ups of stage 2 and the RPC server are not.
   */
  async preStartProcess(container: ContainerProcess): Promise<void> {
    if (this.cfg.cgroups === undefined) return;
    const { ContainerCgroup } = require('./cgroups') as typeof import('./cgroups');
    this.cgroup = new ContainerCgroup(this.containerID);
    await withContext('applying cgroups', () =>
      this.cgroup!.apply(this.cfg.cgroups!, container.pid),
    );
  }

  async startProcess(conn: MasterConn): Promise<never> {
    return startProcess(this.cfg, conn.starterConfig, conn.initFd ?? -1);
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
   * Stops the FUSE daemons once the container is gone: its mounts went with its mount
   * namespace, so they have nothing left to serve.
   */
  private async stopFuse(): Promise<void> {
    const { addon } = require('../../native/addon') as typeof import('../../native/addon');
    for (const d of this.fuse.splice(0)) {
      try {
        process.kill(d.pid, 'SIGTERM');
      } catch {
        // Already gone.
      }
      await addon().waitPidfd(d.pidfd);
      addon().close(d.pidfd);
    }
  }

  /**
   * Mounts live in the container's mount namespace and vanish with it (loop devices detach with
   * their mounts): the image locks are left to release, the FUSE daemons to stop and the cgroup
   * to remove.
   */
  async cleanupContainer(): Promise<void> {
    log().debug({ locks: this.locks.length }, 'cleanup');
    for (const fd of this.locks) fs.closeSync(fd);
    this.locks = [];
    await this.stopFuse();
    await this.cgroup?.remove().catch((err: Error) => {
      log().warn({ err: err.message }, 'cgroup left behind');
    });
  }
}
