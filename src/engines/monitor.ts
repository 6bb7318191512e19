// What every engine's master does while the container runs: forward the signals tsrun receives to
// the container process and wait for it to exit, off the event loop.
import * as fs from 'node:fs';
import { addon, ExitStatus } from '../native/addon';
import { log } from '../common/log';
import { SIGNALS } from '../native/constants';
import type { ContainerProcess, SignalSource } from './index';

/** Forwarded signals whose default action ends the process. */
const TERMINATING = new Set(
  ['SIGHUP', 'SIGINT', 'SIGQUIT', 'SIGTERM', 'SIGUSR1', 'SIGUSR2'].map((n) => SIGNALS[n]),
);

function statusMask(status: string, field: string): bigint {
  const match = new RegExp(`^${field}:\\s*([0-9a-f]+)$`, 'm').exec(status);
  return match === null ? 0n : BigInt(`0x${match[1]}`);
}

/** Whether the process has neither a handler for `signal` nor ignores it. */
export function hasDefaultAction(pid: number, signal: number): boolean {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const handled = statusMask(status, 'SigCgt') | statusMask(status, 'SigIgn');
  return (handled & (1n << BigInt(signal - 1))) === 0n;
}

/**
 * Forwards signals and waits. The init of a pid namespace (the payload with --pid) never gets a
 * signal it has no handler for from its own namespace's view: the kernel drops it. So a
 * terminating signal it would take the default action for is turned into SIGKILL, and the run
 * ends as if that signal had killed it (128 + its number).
 */
export async function forwardAndWait(
  container: ContainerProcess,
  signals: SignalSource,
): Promise<ExitStatus> {
  let exited = false;
  let emulated: number | undefined;
  signals.onSignal((signal) => {
    if (exited) return;
    try {
      const asInit = container.pidNamespaceInit && TERMINATING.has(signal);
      if (asInit && hasDefaultAction(container.pid, signal)) {
        emulated ??= signal;
        log().debug({ signal, hostPid: container.pid }, 'killing pid-namespace init');
        process.kill(container.pid, 'SIGKILL');
        return;
      }
      log().debug({ signal, hostPid: container.pid }, 'forwarding signal');
      process.kill(container.pid, signal);
    } catch (err) {
      log().debug({ err: (err as Error).message }, 'forwarding signal failed');
    }
  });
  const status = await addon().waitPidfd(container.pidfd);
  exited = true;
  if (emulated !== undefined && status.signal === SIGNALS.SIGKILL) {
    return { code: null, signal: emulated };
  }
  return status;
}
