// Namespaces, mounts and confined opens. Whatever changes a namespace or the root runs on a worker
// thread that unshared it first, so mocha's own mount table and root never change.
import { expect } from 'chai';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { AT_FDCWD, CLONE, MS, O, RESOLVE } from '../../../src/native/constants';
import { caught, inWorker, leavesNothingBehind, native, requireRoot } from './helpers';

const S_IFCHR = 0o020000;

describe('native namespaces and mounts', function () {
  const scratch = leavesNothingBehind();

  describe('namespaces and mounts', function () {
    it("mounts and unmounts a tmpfs in a worker thread's mount namespace, unseen here", async function () {
      requireRoot(this);
      const target = fs.mkdtempSync(path.join(scratch(), 'mnt-'));
      const gate = new SharedArrayBuffer(4);
      let seenHere: { listed: boolean; files: string[] } | undefined;
      const inside = await inWorker(
        (n, f, data, post) => {
          n.unshare(data.newns);
          // Private first, so that the tmpfs cannot propagate back to the process's namespace.
          n.mount(null, '/', null, data.recPrivate, null);
          n.mount('tmpfs', data.target, 'tmpfs', 0, 'size=1m');
          f.writeFileSync(`${data.target}/probe`, 'x');
          const mounted = f
            .readFileSync('/proc/thread-self/mountinfo', 'utf8')
            .includes(` ${data.target} `);
          post('mounted');
          Atomics.wait(new Int32Array(data.gate), 0, 0);
          n.umount2(data.target, 0);
          const after = f
            .readFileSync('/proc/thread-self/mountinfo', 'utf8')
            .includes(` ${data.target} `);
          return { mounted, after };
        },
        { target, gate, newns: CLONE.NEWNS, recPrivate: MS.REC | MS.PRIVATE },
        () => {
          seenHere = {
            listed: fs.readFileSync('/proc/self/mountinfo', 'utf8').includes(` ${target} `),
            files: fs.readdirSync(target),
          };
          Atomics.store(new Int32Array(gate), 0, 1);
          Atomics.notify(new Int32Array(gate), 0);
        },
      );
      expect(inside).to.deep.equal({ mounted: true, after: false });
      expect(seenHere).to.deep.equal({ listed: false, files: [] });
    });

    it('joins a namespace by path and by fd on a worker thread', async function () {
      requireRoot(this);
      const nsFd = await inWorker(
        (n, _fs, data) => {
          n.unshare(data.newuts);
          n.sethostname('tsrun-by-path');
          n.setdomainname('tsrun-domain');
          // Not fs.openSync: Node closes the fds a worker opened that way when the worker ends.
          return n.openat2(-100, '/proc/thread-self/ns/uts', 0, 0, 0);
        },
        { newuts: CLONE.NEWUTS },
      );
      try {
        const seen = await inWorker(
          (n, f, data) => {
            const hostname = () => f.readFileSync('/proc/sys/kernel/hostname', 'utf8').trim();
            n.setns(`/proc/self/fd/${data.nsFd}`, data.newuts);
            const byPath = hostname();
            const domain = f.readFileSync('/proc/sys/kernel/domainname', 'utf8').trim();
            // /proc/self is the main thread: its namespace is the process's.
            n.setns('/proc/self/ns/uts', 0);
            const back = hostname();
            n.setns(data.nsFd, 0);
            return { byPath, domain, back, byFd: hostname() };
          },
          { nsFd, newuts: CLONE.NEWUTS },
        );
        expect(seen).to.deep.equal({
          byPath: 'tsrun-by-path',
          domain: 'tsrun-domain',
          back: os.hostname(),
          byFd: 'tsrun-by-path',
        });
      } finally {
        native.close(nsFd);
      }
    });

    it('setns by a missing path fails with open and the path', function () {
      expect(caught(() => native.setns('/nonexistent/ns', 0))).to.include({
        code: 'ENOENT',
        syscall: 'open',
        path: '/nonexistent/ns',
      });
    });

    it('chroots a worker thread that unshared CLONE_FS, not the process', async function () {
      requireRoot(this);
      const root = fs.mkdtempSync(path.join(scratch(), 'root-'));
      fs.writeFileSync(path.join(root, 'marker'), 'inside');
      const seen = await inWorker(
        (n, f, data) => {
          n.unshare(data.fs);
          n.chroot(data.root);
          return f.readFileSync('/marker', 'utf8');
        },
        { root, fs: CLONE.FS },
      );
      expect(seen).to.equal('inside');
      expect(fs.existsSync('/marker')).to.equal(false);
    });

    it('pivotRoot fails with ENOENT naming both paths when the new root is missing', function () {
      requireRoot(this);
      expect(caught(() => native.pivotRoot('/nonexistent/new', '/nonexistent/new/old'))).to.include(
        {
          code: 'ENOENT',
          syscall: 'pivot_root',
          path: '/nonexistent/new',
          dest: '/nonexistent/new/old',
        },
      );
    });

    it('mknod makes a character device', function () {
      requireRoot(this);
      const node = path.join(scratch(), 'null');
      native.mknod(node, S_IFCHR | 0o666, 1, 3);
      const stat = fs.statSync(node);
      expect(stat.isCharacterDevice()).to.equal(true);
      expect(stat.rdev).to.equal((1 << 8) | 3);
      fs.unlinkSync(node);
    });
  });

  describe('openat2', function () {
    it('keeps an absolute symlink inside the root with RESOLVE_IN_ROOT', function () {
      const root = fs.mkdtempSync(path.join(scratch(), 'rootfs-'));
      fs.mkdirSync(path.join(root, 'etc'));
      fs.writeFileSync(path.join(root, 'etc', 'hostname'), 'inside\n');
      fs.symlinkSync('/etc', path.join(root, 'link'));
      const dirfd = native.openat2(AT_FDCWD, root, O.RDONLY | O.DIRECTORY, 0, 0);
      try {
        const fd = native.openat2(dirfd, 'link/hostname', O.RDONLY, 0, RESOLVE.IN_ROOT);
        const flags = fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8').match(/flags:\s*(\d+)/);
        expect(fs.readFileSync(fd, 'utf8')).to.equal('inside\n');
        expect(parseInt(flags?.[1] ?? '0', 8) & O.CLOEXEC).to.equal(O.CLOEXEC);
        native.close(fd);
        expect(
          caught(() => native.openat2(dirfd, 'link/hostname', O.RDONLY, 0, RESOLVE.BENEATH)),
        ).to.include({ code: 'EXDEV', syscall: 'openat2', path: 'link/hostname' });
      } finally {
        native.close(dirfd);
      }
    });
  });
});
