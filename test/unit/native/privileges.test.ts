// Identities, capabilities and prctl switches. Changes run on worker threads: the calls are
// per-thread, which is what the cases check.
import { expect } from 'chai';
import * as fs from 'node:fs';
import {
  inWorker,
  leavesNothingBehind,
  native,
  procStatus,
  requireRoot,
  runMain,
  sh,
} from './helpers';

const CAP_NET_BIND_SERVICE = 10;
const CAP_NET_RAW = 13;
const CAP_MKNOD = 27;

describe('native privileges', function () {
  leavesNothingBehind();

  describe('of the calling thread', function () {
    it('capget returns the sets /proc shows for this thread', function () {
      const status = procStatus('/proc/thread-self/status');
      expect(native.capget()).to.deep.equal({
        effective: BigInt(`0x${status.get('CapEff')}`),
        permitted: BigInt(`0x${status.get('CapPrm')}`),
        inheritable: BigInt(`0x${status.get('CapInh')}`),
      });
    });

    it('capLast matches /proc/sys/kernel/cap_last_cap', function () {
      expect(native.capLast()).to.equal(
        Number(fs.readFileSync('/proc/sys/kernel/cap_last_cap', 'utf8')),
      );
    });

    it('capBoundingRead matches CapBnd for every capability', function () {
      const bounding = BigInt(`0x${procStatus('/proc/self/status').get('CapBnd')}`);
      for (let cap = 0; cap <= native.capLast(); cap++) {
        expect(native.capBoundingRead(cap), `cap ${cap}`).to.equal(
          (bounding & (1n << BigInt(cap))) !== 0n,
        );
      }
    });

    it('capset, ambient and bounding changes stay on the calling thread', async function () {
      requireRoot(this);
      const seen = await inWorker(
        (n, f, data) => {
          const sets = n.capget();
          const raw = 1n << BigInt(data.CAP_NET_RAW);
          n.capset({ ...sets, effective: sets.effective & ~raw });
          const eff = f
            .readFileSync('/proc/thread-self/status', 'utf8')
            .match(/CapEff:\s*(\w+)/)![1];
          n.capset({ ...sets, inheritable: 1n << BigInt(data.CAP_NET_BIND_SERVICE) });
          n.capAmbientRaise(data.CAP_NET_BIND_SERVICE);
          const ambient = n.capAmbientIsSet(data.CAP_NET_BIND_SERVICE);
          n.capAmbientClearAll();
          n.capBoundingDrop(data.CAP_MKNOD);
          return {
            rawDropped: (BigInt(`0x${eff}`) & raw) === 0n,
            ambient,
            cleared: !n.capAmbientIsSet(data.CAP_NET_BIND_SERVICE),
            mknod: n.capBoundingRead(data.CAP_MKNOD),
          };
        },
        { CAP_NET_RAW, CAP_NET_BIND_SERVICE, CAP_MKNOD },
      );
      expect(seen).to.deep.equal({ rawDropped: true, ambient: true, cleared: true, mknod: false });
      expect(native.capBoundingRead(CAP_MKNOD)).to.equal(true);
      expect(native.capAmbientIsSet(CAP_NET_BIND_SERVICE)).to.equal(false);
    });

    it('setresuid, setresgid, setgroups and setfs*id change only the calling thread', async function () {
      requireRoot(this);
      const seen = await inWorker((n, f) => {
        const line = (key: string) =>
          f
            .readFileSync('/proc/thread-self/status', 'utf8')
            .split('\n')
            .find((l) => l.startsWith(`${key}:`))!
            .trim()
            .split(/\s+/)
            .slice(1)
            .join(' ');
        n.setgroups([1, 2]);
        n.setresgid(0, 65534, 0);
        n.setresuid(0, 65534, 0);
        const ids = { uid: line('Uid'), gid: line('Gid'), groups: line('Groups') };
        n.setresuid(0, 0, 0);
        const previousFsuid = n.setfsuid(1000);
        const fsuid = line('Uid');
        return { ...ids, previousFsuid, fsuid, previousFsgid: n.setfsgid(1000) };
      }, null);
      expect(seen).to.deep.equal({
        uid: '0 65534 0 65534',
        gid: '0 65534 0 65534',
        groups: '1 2',
        previousFsuid: 0,
        fsuid: '0 0 0 1000',
        previousFsgid: 65534,
      });
      const here = procStatus('/proc/self/status');
      expect(here.get('Uid')).to.equal('0\t0\t0\t0');
      expect(here.get('Groups')).not.to.equal('1 2');
    });

    it('setKeepCaps keeps the permitted set across a change to non-zero uids', async function () {
      requireRoot(this);
      const seen = await inWorker((n) => {
        n.setKeepCaps(true);
        n.setresuid(1000, 1000, 1000);
        return n.capget().permitted !== 0n;
      }, null);
      expect(seen).to.equal(true);
    });

    it('setNoNewPrivs and setName change only the calling thread', async function () {
      const seen = await inWorker((n, f) => {
        const before = n.getNoNewPrivs();
        n.setNoNewPrivs();
        n.setName('tsrun-worker-with-a-long-name');
        return {
          before,
          after: n.getNoNewPrivs(),
          comm: f.readFileSync('/proc/thread-self/comm', 'utf8'),
        };
      }, null);
      expect(seen).to.deep.equal({ before: false, after: true, comm: 'tsrun-worker-wi\n' });
      expect(native.getNoNewPrivs()).to.equal(false);
    });

    it('setChildSubreaper adopts orphaned grandchildren', async function () {
      native.setChildSubreaper(true);
      try {
        const { output } = await runMain((out) =>
          sh('sleep 0.3 3>&- & echo $! >&3', [{ fd: out, target: 3 }]),
        );
        const grandchild = Number(output.trim());
        expect(procStatus(`/proc/${grandchild}/status`).get('PPid')).to.equal(String(process.pid));
        expect(native.waitPid(grandchild)).to.deep.equal({
          pid: grandchild,
          code: 0,
          signal: null,
        });
      } finally {
        native.setChildSubreaper(false);
      }
    });
  });
});
