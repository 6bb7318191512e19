// The addon's surface, its errors and its fd calls, on the real kernel.
import { expect } from 'chai';
import * as fs from 'node:fs';
import { O } from '../../../src/native/constants';
import { caught, leavesNothingBehind, native } from './helpers';

describe('native addon', function () {
  leavesNothingBehind();

  it('exposes every function of the Addon interface', function () {
    const names = [
      'cloneExec',
      'release',
      'abort',
      'waitPidfd',
      'waitPid',
      'execve',
      'setsid',
      'getpgrp',
      'tcgetpgrp',
      'tcsetpgrp',
      'setns',
      'unshare',
      'mount',
      'umount2',
      'pivotRoot',
      'chroot',
      'sethostname',
      'setdomainname',
      'openat2',
      'mknod',
      'setresuid',
      'setresgid',
      'setgroups',
      'setfsuid',
      'setfsgid',
      'capget',
      'capset',
      'capBoundingRead',
      'capBoundingDrop',
      'capAmbientRaise',
      'capAmbientClearAll',
      'capAmbientIsSet',
      'capLast',
      'setNoNewPrivs',
      'getNoNewPrivs',
      'setKeepCaps',
      'setPdeathsig',
      'setChildSubreaper',
      'setName',
      'socketpair',
      'pipe',
      'sendFds',
      'recvFds',
      'setCloexec',
      'close',
    ];
    for (const name of names) expect(native, name).to.have.property(name).that.is.a('function');
  });

  describe('errors', function () {
    it('carry code, errno, syscall and path, and name them in the message', function () {
      const err = caught(() => native.chroot('/nonexistent/tsrun'));
      expect(err).to.be.instanceOf(Error);
      expect(err).to.include({
        code: 'ENOENT',
        errno: 2,
        syscall: 'chroot',
        path: '/nonexistent/tsrun',
      });
      expect(err).not.to.have.property('dest');
      expect(err.message).to.equal(
        "chroot '/nonexistent/tsrun': ENOENT (No such file or directory)",
      );
    });

    it('carry the source as path and the mount point as dest for mount', function () {
      const err = caught(() => native.mount('proc', '/nonexistent/proc', 'proc', 0, null));
      expect(err).to.include({
        code: 'ENOENT',
        syscall: 'mount',
        path: 'proc',
        dest: '/nonexistent/proc',
      });
      expect(err.message).to.equal(
        "mount 'proc' -> '/nonexistent/proc': ENOENT (No such file or directory)",
      );
    });

    it('are TypeErrors naming the argument when an argument is wrong', function () {
      expect(() => native.mount(1 as never, '/x', null, 0, null)).to.throw(
        TypeError,
        "argument 'source'",
      );
      expect(() => native.close(-1)).to.throw(TypeError, "argument 'fd'");
      expect(() => native.chroot('/a\0b')).to.throw(TypeError, 'NUL');
      expect(() => native.capset({ effective: 1 } as never)).to.throw(TypeError, 'sets.effective');
    });
  });

  describe('file descriptors', function () {
    it('pipe and socketpair return close-on-exec fds', function () {
      for (const [a, b] of [native.pipe(), native.socketpair()]) {
        for (const fd of [a, b]) {
          const flags = fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8').match(/flags:\s*(\d+)/);
          expect(parseInt(flags?.[1] ?? '0', 8) & O.CLOEXEC, `fd ${fd}`).to.equal(O.CLOEXEC);
          native.close(fd);
        }
      }
    });

    it('sends an fd and data over a socket pair and receives them close-on-exec', function () {
      const [left, right] = native.socketpair();
      const [readEnd, writeEnd] = native.pipe();
      try {
        native.sendFds(left, Buffer.from('take this'), [readEnd]);
        const { data, fds } = native.recvFds(right, 64, 4);
        expect(data.toString()).to.equal('take this');
        expect(fds).to.have.length(1);
        const fdinfo = fs.readFileSync(`/proc/self/fdinfo/${fds[0]}`, 'utf8');
        expect(parseInt(fdinfo.match(/flags:\s*(\d+)/)?.[1] ?? '0', 8) & O.CLOEXEC).to.equal(
          O.CLOEXEC,
        );
        fs.writeSync(writeEnd, 'through the copy');
        native.close(writeEnd);
        expect(fs.readFileSync(fds[0], 'utf8')).to.equal('through the copy');
        native.close(fds[0]);
      } finally {
        for (const fd of [left, right, readEnd]) native.close(fd);
      }
    });

    it('recvFds returns empty data and no fds when the peer closed', function () {
      const [left, right] = native.socketpair();
      native.close(left);
      expect(native.recvFds(right, 16, 1)).to.deep.equal({ data: Buffer.alloc(0), fds: [] });
      native.close(right);
    });

    it('sendFds refuses empty data', function () {
      expect(() => native.sendFds(0, Buffer.alloc(0), [])).to.throw(TypeError, "'data'");
    });

    it('setCloexec turns FD_CLOEXEC off and on', function () {
      const [readEnd, writeEnd] = native.pipe();
      const cloexec = () =>
        (parseInt(
          fs.readFileSync(`/proc/self/fdinfo/${readEnd}`, 'utf8').match(/flags:\s*(\d+)/)?.[1] ??
            '0',
          8,
        ) &
          O.CLOEXEC) !==
        0;
      native.setCloexec(readEnd, false);
      expect(cloexec()).to.equal(false);
      native.setCloexec(readEnd, true);
      expect(cloexec()).to.equal(true);
      native.close(readEnd);
      native.close(writeEnd);
    });

    it('close fails with EBADF on a closed fd', function () {
      const [readEnd, writeEnd] = native.pipe();
      native.close(readEnd);
      native.close(writeEnd);
      expect(caught(() => native.close(readEnd))).to.include({ code: 'EBADF', syscall: 'close' });
    });
  });
});
