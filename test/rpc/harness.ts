// Starts the real RPC server process (node dist/src/rpc/main.js) the way the container process
// does: cloned by the addon with namespace flags, one end of a socketpair at fd 3.
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { addon, ExitStatus } from '../../src/native/addon';
import { SIGNALS } from '../../src/native/constants';
import { RpcClient } from '../../src/rpc/client';

export const MAIN = path.join(__dirname, '..', '..', 'src', 'rpc', 'main.js');

export interface ServerProcess {
  pid: number;
  client: RpcClient;
  /** The test's end of the socketpair, for raw writes. */
  conn: net.Socket;
  /** Waits for the server to exit (once). */
  exited(): Promise<ExitStatus>;
  /** Number of fds the server has open now. */
  openFds(): number;
}

/** Why these tests cannot run on this machine, or undefined when they can. */
export function missingRequirement(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (mounts, pivot_root, mknod, sethostname)';
  try {
    const native = addon();
    for (const fn of ['cloneExec', 'release', 'waitPidfd', 'socketpair', 'openat2', 'mount']) {
      if (typeof (native as unknown as Record<string, unknown>)[fn] !== 'function') {
        return `needs the native addon's ${fn}()`;
      }
    }
  } catch (err) {
    return `needs the native addon (${(err as Error).message})`;
  }
  if (!fs.existsSync(MAIN)) return `needs the built RPC server entry ${MAIN}`;
  return undefined;
}

export async function startServer(flags: number): Promise<ServerProcess> {
  const native = addon();
  const [mine, theirs] = native.socketpair();
  let handle;
  try {
    handle = native.cloneExec({
      flags,
      joinNs: [],
      waitForRelease: false,
      main: {
        path: process.execPath,
        argv: [process.execPath, MAIN],
        envp: ['TSRUN_RPC_FD=3', 'TSRUN_ENGINE=tsrun'],
        fds: [{ fd: theirs, target: 3 }],
        pdeathSignal: SIGNALS.SIGKILL,
      },
    });
  } finally {
    native.close(theirs);
  }
  await native.release(handle);
  const { pid, pidfd } = handle;
  let status: Promise<ExitStatus> | undefined;
  const conn = new net.Socket({ fd: mine, readable: true, writable: true });
  return {
    pid,
    client: new RpcClient(conn),
    conn,
    exited: () => (status ??= native.waitPidfd(pidfd).finally(() => native.close(pidfd))),
    openFds: () => fs.readdirSync(`/proc/${pid}/fd`).length,
  };
}
