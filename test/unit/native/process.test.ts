// Waiting for processes, execve, sessions and process groups. execve and setsid run in a spawned
// Node process, never in mocha's.
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { SystemError } from '../../../src/native/addon';
import { addonModule, caught, leavesNothingBehind, native, sh } from './helpers';

describe('native processes', function () {
  leavesNothingBehind();

  describe('waiting and exec', function () {
    it('waitPid reaps a child and reports its exit code', async function () {
      const handle = native.cloneExec({
        flags: 0,
        joinNs: [],
        waitForRelease: false,
        main: sh('exit 3'),
      });
      await native.release(handle);
      expect(native.waitPid(handle.pid)).to.deep.equal({ pid: handle.pid, code: 3, signal: null });
      native.close(handle.pidfd);
    });

    it('waitPidfd rejects with EBADF for an fd that is no pidfd', async function () {
      const err = await native.waitPidfd(987654).then(
        () => undefined,
        (e: SystemError) => e,
      );
      expect(err).to.include({ code: 'EBADF', syscall: 'waitid' });
    });

    it('execve replaces the process with default signals and the same stdio', function () {
      const script = `require(${JSON.stringify(addonModule)}).addon().execve('/bin/sh',
        ['sh', '-c', 'grep SigIgn /proc/self/status'], [])`;
      const result = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' });
      expect(result.stderr).to.equal('');
      expect(result.stdout).to.equal('SigIgn:\t0000000000000000\n');
    });

    it("execve throws ENOENT and keeps Node's signal handling when the program is missing", function () {
      const script = `const n = require(${JSON.stringify(addonModule)}).addon();
          try { n.execve('/nonexistent/prog', ['prog'], []); } catch (e) {
            const status = require('fs').readFileSync('/proc/self/status', 'utf8');
            const ign = status.match(/SigIgn:\\s*(\\w+)/)[1];
            console.log(e.code, e.syscall, e.path, Number((BigInt('0x' + ign) >> 12n) & 1n));
          }`;
      const result = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' });
      expect(result.stdout).to.equal('ENOENT execve /nonexistent/prog 1\n');
    });

    it('setsid makes a new session led by the calling process', function () {
      const script = `const n = require(${JSON.stringify(addonModule)}).addon();
        console.log(n.setsid() === process.pid, n.getpgrp() === process.pid)`;
      const result = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' });
      expect(result.stdout).to.equal('true true\n');
    });

    it('getpgrp returns the process group of /proc/self/stat', function () {
      const fields = fs.readFileSync('/proc/self/stat', 'utf8').split(') ')[1].split(' ');
      expect(native.getpgrp()).to.equal(Number(fields[2]));
    });

    it('tcgetpgrp returns -1 and tcsetpgrp fails with ENOTTY on a pipe', function () {
      const [readEnd, writeEnd] = native.pipe();
      try {
        expect(native.tcgetpgrp(readEnd)).to.equal(-1);
        expect(caught(() => native.tcsetpgrp(readEnd, native.getpgrp()))).to.include({
          code: 'ENOTTY',
          syscall: 'tcsetpgrp',
        });
      } finally {
        native.close(readEnd);
        native.close(writeEnd);
      }
    });
  });
});
