// Running stage 1 from the starter: a short-lived process on the host that prepares the configs.
import * as net from 'node:net';
import { ErrorData, fromErrorData, TsrunError, wrap } from '../common/errors';
import { readMessages } from '../common/messages';
import type { StarterConfig } from '../engines/config';
import { addon } from '../native/addon';
import { stageSpec } from './stages';

export interface Prepared {
  engineConfig: unknown;
  starterConfig: StarterConfig;
}

type Stage1Message =
  | { type: 'result'; engineConfig: unknown; starterConfig: StarterConfig }
  | { type: 'error'; error: ErrorData };

function exchange(sock: net.Socket, engineConfig: string): Promise<Stage1Message> {
  return new Promise((resolve, reject) => {
    let answered = false;
    readMessages(
      sock,
      (m) => {
        answered = true;
        resolve(m as Stage1Message);
      },
      (err) => {
        if (!answered) reject(err ?? new TsrunError('stage 1 exited without an answer', 'EPIPE'));
      },
    );
    sock.write(`${JSON.stringify({ engineConfig })}\n`);
  });
}

/** Runs stage 1 on `engineConfig`; returns the prepared configs or throws stage 1's error. */
export async function runStage1(engineConfig: string, cid: string): Promise<Prepared> {
  const [mine, theirs] = addon().socketpair();
  const handle = addon().cloneExec({
    flags: 0,
    joinNs: [],
    waitForRelease: false,
    main: stageSpec('stage1', theirs, { TSRUN_CID: cid }),
  });
  addon().close(theirs);
  const sock = new net.Socket({ fd: mine, readable: true, writable: true });
  try {
    await addon().release(handle);
    const answer = await exchange(sock, engineConfig);
    if (answer.type === 'error') throw fromErrorData(answer.error, 'stage 1');
    return { engineConfig: answer.engineConfig, starterConfig: answer.starterConfig };
  } catch (err) {
    throw err instanceof TsrunError ? err : wrap(err, 'stage 1');
  } finally {
    sock.destroy();
    await addon().waitPidfd(handle.pidfd);
    addon().close(handle.pidfd);
  }
}
