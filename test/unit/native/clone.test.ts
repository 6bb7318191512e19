// cloneExec, release and abort on the real kernel. Cases that need root (namespaces, capabilities)
// skip without it; every clone is waited for, so no process is left behind.
import { expect } from 'chai';
import * as fs from 'node:fs';
import * as os from 'node:os';
import { SystemError } from '../../../src/native/addon';
import { CLONE, SIGNALS } from '../../../src/native/constants';
import {
  finish,
  inWorker,
  leavesNothingBehind,
  native,
  requireRoot,
  run,
  runMain,
  sh,
  sleep,
} from './helpers';

const CAP_NET_BIND_SERVICE = 10;

describe('native cloneExec', function () {
  leavesNothingBehind();

  describe('one process', function () {
    it('reports the exit code of the payload', async function () {
      const { status } = await runMain(() => sh('exit 7'));
      expect(status).to.deep.equal({ code: 7, signal: null });
    });

    it('reports the signal that killed the payload', async function () {
      const { status } = await runMain(() => sh('kill -KILL $$'));
      expect(status).to.deep.equal({ code: null, signal: SIGNALS.SIGKILL });
    });

    it('places fds at fixed numbers for the payload', async function () {
      const { output } = await runMain((out) => sh('echo hi >&3', [{ fd: out, target: 3 }]));
      expect(output).to.equal('hi\n');
    });

    it('places an fd on stdout in place of the inherited one', async function () {
      const { output } = await runMain((out) => sh('echo on-stdout', [{ fd: out, target: 1 }]));
      expect(output).to.equal('on-stdout\n');
    });

    it('places fds whose targets are the numbers of other sources', async function () {
      // Swaps two pipes: each one's target is the other one's number here.
      const [otherRead, otherWrite] = native.pipe();
      try {
        const { output } = await runMain((out) =>
          sh(`echo to-other >/proc/self/fd/${out}; echo to-out >/proc/self/fd/${otherWrite}`, [
            { fd: otherWrite, target: out },
            { fd: out, target: otherWrite },
          ]),
        );
        native.close(otherWrite);
        expect(output).to.equal('to-out\n');
        expect(fs.readFileSync(otherRead, 'utf8')).to.equal('to-other\n');
      } finally {
        native.close(otherRead);
      }
    });

    it('passes no fd but 0-2 and the placed ones', async function () {
      const [leakRead, leakWrite] = native.pipe();
      native.setCloexec(leakWrite, false);
      try {
        const { output } = await runMain((out) =>
          sh('exec ls /proc/self/fd >&3', [{ fd: out, target: 3 }]),
        );
        // ls lists its own directory fd too, at the lowest free number.
        const listed = output.split('\n').filter(Boolean).map(Number);
        expect(listed).to.include(3);
        expect(listed.filter((fd) => fd > 3)).to.have.length.at.most(1);
        expect(Math.max(...listed)).to.be.at.most(4);
      } finally {
        native.close(leakRead);
        native.close(leakWrite);
      }
    });

    it('starts the payload with default signal handling and no blocked signal', async function () {
      // Node ignores SIGPIPE; the payload must not inherit that.
      const { output } = await runMain((out) =>
        sh('grep -E "^Sig(Ign|Blk)" /proc/self/status >&3', [{ fd: out, target: 3 }]),
      );
      expect(output).to.equal('SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n');
    });

    it('holds the child before execve until release()', async function () {
      const [readEnd, writeEnd] = native.pipe();
      const handle = native.cloneExec({
        flags: 0,
        joinNs: [],
        waitForRelease: true,
        main: sh('echo ran >&3', [{ fd: writeEnd, target: 3 }]),
      });
      native.close(writeEnd);
      try {
        await sleep(200);
        const exe = fs.readlinkSync(`/proc/${handle.pid}/exe`);
        expect(exe, 'still Node before release').to.equal(fs.realpathSync(process.execPath));
        await native.release(handle);
        expect(await finish(handle)).to.deep.equal({ code: 0, signal: null });
        expect(fs.readFileSync(readEnd, 'utf8')).to.equal('ran\n');
      } finally {
        native.close(readEnd);
      }
    });

    it('makes a held child exit 1 without running when aborted', async function () {
      const [readEnd, writeEnd] = native.pipe();
      const handle = native.cloneExec({
        flags: 0,
        joinNs: [],
        waitForRelease: true,
        main: sh('echo ran >&3', [{ fd: writeEnd, target: 3 }]),
      });
      native.close(writeEnd);
      native.abort(handle);
      native.abort(handle); // a second abort is a no-op
      expect(await finish(handle)).to.deep.equal({ code: 1, signal: null });
      expect(fs.readFileSync(readEnd, 'utf8')).to.equal('');
      native.close(readEnd);
    });

    it('lets an aborted child exit while a later clone is still held', async function () {
      // The later child must not keep a copy of the earlier one's sync pipe.
      const spec = { flags: 0, joinNs: [], waitForRelease: true, main: sh('exit 0') };
      const first = native.cloneExec(spec);
      const second = native.cloneExec(spec);
      native.abort(first);
      expect(await finish(first)).to.deep.equal({ code: 1, signal: null });
      await native.release(second);
      expect(await finish(second)).to.deep.equal({ code: 0, signal: null });
    });

    it('rejects release() with ENOENT, execve and the path when the program is missing', async function () {
      const handle = native.cloneExec({
        flags: 0,
        joinNs: [],
        waitForRelease: true,
        main: { path: '/nonexistent/tsrun-payload', argv: ['x'], envp: [], fds: [] },
      });
      const err = await native.release(handle).then(
        () => undefined,
        (e: SystemError) => e,
      );
      expect(err).to.include({
        code: 'ENOENT',
        errno: 2,
        syscall: 'execve',
        path: '/nonexistent/tsrun-payload',
      });
      expect(err?.message).to.equal(
        "execve '/nonexistent/tsrun-payload': ENOENT (No such file or directory)",
      );
      expect(await finish(handle)).to.deep.equal({ code: 127, signal: null });
    });

    it('rejects release() with chdir and the directory when cwd is missing', async function () {
      const handle = native.cloneExec({
        flags: 0,
        joinNs: [],
        waitForRelease: false,
        main: sh('exit 0', [], { cwd: '/nonexistent/dir' }),
      });
      const err = await native.release(handle).then(
        () => undefined,
        (e: SystemError) => e,
      );
      expect(err).to.include({ code: 'ENOENT', syscall: 'chdir', path: '/nonexistent/dir' });
      await finish(handle);
    });

    it('starts a new session and changes directory when asked', async function () {
      const { output } = await runMain((out) =>
        sh('echo $$ $(cut -d" " -f6 /proc/$$/stat) $(pwd) >&3', [{ fd: out, target: 3 }], {
          setsid: true,
          cwd: '/usr',
        }),
      );
      const [pid, session, cwd] = output.trim().split(' ');
      expect(session).to.equal(pid);
      expect(cwd).to.equal('/usr');
    });

    it('unshares a mount namespace after joining the one given', async function () {
      requireRoot(this);
      const own = fs.readlinkSync('/proc/self/ns/mnt');
      const ns = fs.openSync('/proc/self/ns/mnt', 'r');
      try {
        const { output } = await run((out) => ({
          flags: 0,
          joinNs: [ns],
          unshare: CLONE.NEWNS,
          waitForRelease: false,
          main: sh('readlink /proc/self/ns/mnt >&3', [{ fd: out, target: 3 }]),
        }));
        expect(output.trim()).to.match(/^mnt:\[\d+\]$/);
        expect(output.trim()).to.not.equal(own);
      } finally {
        fs.closeSync(ns);
      }
    });

    describe('forkAfterJoin', function () {
      let holder: ReturnType<typeof import('node:child_process').spawn> | undefined;
      let pidNs = -1;
      beforeEach(async function () {
        requireRoot(this);
        // A process in a pid namespace of its own (unshare forks it as pid 1 there).
        const { spawn } = require('node:child_process') as typeof import('node:child_process');
        holder = spawn('unshare', ['--pid', '--fork', '--kill-child', 'sleep', '60'], {
          stdio: 'ignore',
        });
        const outer = holder.pid!;
        let inner = 0;
        for (let i = 0; i < 200 && inner === 0; i++) {
          const kids = fs.readFileSync(`/proc/${outer}/task/${outer}/children`, 'utf8').trim();
          inner = Number(kids.split(' ')[0] || 0);
          if (inner === 0) await sleep(10);
        }
        pidNs = fs.openSync(`/proc/${inner}/ns/pid`, 'r');
      });
      afterEach(async function () {
        if (pidNs >= 0) fs.closeSync(pidNs);
        pidNs = -1;
        if (holder !== undefined) {
          const gone = new Promise((resolve) => holder!.on('exit', resolve));
          holder.kill('SIGKILL');
          await gone;
        }
        holder = undefined;
      });

      it('runs the payload in the pid namespace it joined', async function () {
        const want = fs.readlinkSync(`/proc/self/fd/${pidNs}`);
        const { output, status } = await run((out) => ({
          flags: 0,
          joinNs: [pidNs],
          forkAfterJoin: true,
          waitForRelease: false,
          main: sh('readlink /proc/self/ns/pid >&3; exit 7', [{ fd: out, target: 3 }]),
        }));
        expect(output.trim()).to.equal(want);
        expect(output.trim()).to.not.equal(fs.readlinkSync('/proc/self/ns/pid'));
        expect(status).to.deep.equal({ code: 7, signal: null });
      });

      it('ends as the payload did: by its signal, and forwards signals to it', async function () {
        const killed = await run(() => ({
          flags: 0,
          joinNs: [pidNs],
          forkAfterJoin: true,
          waitForRelease: false,
          main: sh('kill -KILL $$'),
        }));
        expect(killed.status).to.deep.equal({ code: null, signal: SIGNALS.SIGKILL });
        const [readEnd, writeEnd] = native.pipe();
        const handle = native.cloneExec({
          flags: 0,
          joinNs: [pidNs],
          forkAfterJoin: true,
          waitForRelease: false,
          main: sh(
            "trap 'echo got-usr1 >&3; exit 3' USR1; echo up >&3; while :; do sleep 0.05; done",
            [{ fd: writeEnd, target: 3 }],
          ),
        });
        native.close(writeEnd);
        await native.release(handle);
        const reader = fs.createReadStream('', { fd: readEnd });
        let text = '';
        await new Promise<void>((resolve) =>
          reader.on('data', (d) => {
            text += String(d);
            if (text.includes('up')) resolve();
          }),
        );
        const closed = new Promise<void>((resolve) => reader.on('close', () => resolve()));
        process.kill(handle.pid, 'SIGUSR1');
        const status = await finish(handle);
        await closed;
        expect(text).to.equal('up\ngot-usr1\n');
        expect(status).to.deep.equal({ code: 3, signal: null });
      });
    });

    it('refuses unshare flags other than CLONE_NEW*', function () {
      const spec = {
        flags: 0,
        joinNs: [],
        unshare: 0x100,
        waitForRelease: false,
        main: sh('true'),
      };
      expect(() => native.cloneExec(spec)).to.throw(TypeError, /spec\.unshare/);
    });

    it('rejects release() with setns when a namespace fd is not one', async function () {
      const [readEnd, writeEnd] = native.pipe();
      try {
        const handle = native.cloneExec({
          flags: 0,
          joinNs: [readEnd],
          waitForRelease: false,
          main: sh('exit 0'),
        });
        const err = await native.release(handle).then(
          () => undefined,
          (e: SystemError) => e,
        );
        expect(err).to.include({ code: 'EINVAL', syscall: 'setns' });
        expect(await finish(handle)).to.deep.equal({ code: 127, signal: null });
      } finally {
        native.close(readEnd);
        native.close(writeEnd);
      }
    });

    it('refuses flags other than CLONE_NEW*', function () {
      expect(() =>
        native.cloneExec({
          flags: 0x100 /* CLONE_VM */,
          joinNs: [],
          waitForRelease: false,
          main: sh('exit 0'),
        }),
      ).to.throw(TypeError, 'spec.flags');
    });

    it('refuses a target placed twice or below 0', function () {
      const spec = (fds: { fd: number; target: number }[]) => () =>
        native.cloneExec({
          flags: 0,
          joinNs: [],
          waitForRelease: false,
          main: sh('exit 0', fds),
        });
      expect(
        spec([
          { fd: 0, target: 3 },
          { fd: 1, target: 3 },
        ]),
      ).to.throw(TypeError, 'twice');
      expect(spec([{ fd: 0, target: -1 }])).to.throw(TypeError, 'target');
    });
  });

  describe('RPC server, namespaces and capabilities', function () {
    it('starts a CLONE_NEWPID|CLONE_NEWNS|CLONE_NEWUTS child as pid 1 of its namespace', async function () {
      requireRoot(this);
      const hostname = os.hostname();
      const { output } = await run((out) => ({
        flags: CLONE.NEWPID | CLONE.NEWNS | CLONE.NEWUTS,
        joinNs: [],
        waitForRelease: false,
        main: sh('hostname tsrun-inner && echo $$ $(uname -n) >&3', [{ fd: out, target: 3 }]),
      }));
      expect(output).to.equal('1 tsrun-inner\n');
      expect(os.hostname()).to.equal(hostname);
    });

    it('forks the RPC server as a child of the main process, in its pid namespace', async function () {
      requireRoot(this);
      // Main waits until the RPC server closes its end of `gate`, so it is still its parent.
      const [gateRead, gateWrite] = native.pipe();
      const { output } = await run(
        (out) => ({
          flags: CLONE.NEWPID,
          joinNs: [],
          waitForRelease: true,
          main: sh('cat <&4 >/dev/null', [{ fd: gateRead, target: 4 }]),
          rpc: sh('echo $$ $PPID >&3', [
            { fd: out, target: 3 },
            { fd: gateWrite, target: 4 },
          ]),
        }),
        [gateRead, gateWrite],
      );
      expect(output).to.equal('2 1\n');
    });

    it('rejects release() naming the RPC server program when it is missing', async function () {
      const handle = native.cloneExec({
        flags: 0,
        joinNs: [],
        waitForRelease: true,
        main: sh('exit 0'),
        rpc: { path: '/nonexistent/rpc', argv: ['rpc'], envp: [], fds: [] },
      });
      const err = await native.release(handle).then(
        () => undefined,
        (e: SystemError) => e,
      );
      expect(err).to.include({ code: 'ENOENT', syscall: 'execve', path: '/nonexistent/rpc' });
      await finish(handle);
    });

    it('kills the RPC server with its parent-death signal when the main process exits', async function () {
      // The pipe reaches its end when the RPC server (sleep, holding it) dies: at once if the
      // signal works, after 5 s if not.
      const started = Date.now();
      await run((out) => ({
        flags: 0,
        joinNs: [],
        waitForRelease: false,
        main: sh('exit 0'),
        rpc: sh('exec sleep 5', [{ fd: out, target: 3 }], { pdeathSignal: SIGNALS.SIGKILL }),
      }));
      expect(Date.now() - started).to.be.below(4000);
    });

    it('joins the namespaces given in joinNs, in the child only', async function () {
      requireRoot(this);
      // A worker thread makes a uts namespace and leaves it open as an fd of this process.
      const nsFd = await inWorker(
        (n, _fs, data) => {
          n.unshare(data.newuts);
          n.sethostname('tsrun-joined');
          // Not fs.openSync: Node closes the fds a worker opened that way when the worker ends.
          return n.openat2(-100, '/proc/thread-self/ns/uts', 0, 0, 0);
        },
        { newuts: CLONE.NEWUTS },
      );
      try {
        const { output } = await run((out) => ({
          flags: 0,
          joinNs: [nsFd],
          waitForRelease: false,
          main: sh('uname -n >&3', [{ fd: out, target: 3 }]),
        }));
        expect(output).to.equal('tsrun-joined\n');
        expect(os.hostname()).not.to.equal('tsrun-joined');
      } finally {
        native.close(nsFd);
      }
    });

    it('raises ambient capabilities in the child', async function () {
      requireRoot(this);
      const { output } = await runMain((out) =>
        sh('grep CapAmb /proc/self/status >&3', [{ fd: out, target: 3 }], {
          ambientCaps: [CAP_NET_BIND_SERVICE],
        }),
      );
      expect(output).to.equal('CapAmb:\t0000000000000400\n');
    });
  });
});
