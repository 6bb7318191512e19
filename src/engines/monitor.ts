// What every engine's master does while the container runs: forward the signals tsrun receives to
// the container process and wait for it to exit, off the event loop.
import { addon, ExitStatus } from '../native/addon';
import { log } from '../common/log';
import type { ContainerProcess, SignalSource } from './index';

export async function forwardAndWait(
  container: ContainerProcess,
  signals: SignalSource,
): Promise<ExitStatus> {
  let exited = false;
  signals.onSignal((signal) => {
    if (exited) return;
    log().debug({ signal, pid: container.pid }, 'forwarding signal');
    try {
      process.kill(container.pid, signal);
    } catch (err) {
      log().debug({ err: (err as Error).message }, 'forwarding signal failed');
    }
  });
  const status = await addon().waitPidfd(container.pidfd);
  exited = true;
  return status;
}
