// What the container sees, as facts from the probe in the busybox image (test/fixtures/probe).
import { expect } from 'chai';
import * as fs from 'node:fs';
import { BUSYBOX, expectNothingLeftBehind, requireImage, tsrun } from '../helpers/run';

interface Probe {
  pid: number;
  uid: { real: number; effective: number; saved: number };
  caps: { eff: string; bnd: string; amb: string };
  noNewPrivs: number;
  ns: Record<string, string>;
  mounts: { mountPoint: string; fsType: string; options: string }[];
  signals: { ignored: string; blocked: string };
  env: Record<string, string>;
}

function probe(flags: string[] = []): Probe {
  const r = tsrun(['exec', ...flags, BUSYBOX, '/usr/local/bin/probe']);
  expect(r.status, r.stderr).to.equal(0);
  return JSON.parse(r.stdout) as Probe;
}

function hostNamespace(kind: string): string {
  return fs.readlinkSync(`/proc/self/ns/${kind}`);
}

function hostCapBounding(): string {
  const line = fs
    .readFileSync('/proc/self/status', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('CapBnd:'))!;
  return line.split(/\s+/)[1];
}

describe('what the payload sees (probe)', function () {
  this.beforeAll(function () {
    requireImage(this, BUSYBOX, 'run scripts/setup.sh');
  });
  expectNothingLeftBehind();

  it('has its own mount namespace and shares the others by default', () => {
    const p = probe();
    expect(p.ns.mnt).to.not.equal(hostNamespace('mnt'));
    for (const kind of ['pid', 'uts', 'ipc', 'net', 'user', 'cgroup']) {
      expect(p.ns[kind], kind).to.equal(hostNamespace(kind));
    }
  });

  it('gets new pid, uts and ipc namespaces with --pid --uts --ipc', () => {
    const p = probe(['--pid', '--no-init', '--uts', '--ipc']);
    for (const kind of ['pid', 'uts', 'ipc']) {
      expect(p.ns[kind], kind).to.not.equal(hostNamespace(kind));
    }
    expect(p.pid, 'pid 1 with --no-init').to.equal(1);
    const underInit = probe(['--pid']);
    expect(underInit.pid, 'a child of tsrun-init').to.be.above(1);
  });

  it("runs as root with root's bounding set, no ambient capabilities and no_new_privs unset", () => {
    const p = probe();
    expect(p.uid).to.deep.equal({ real: 0, effective: 0, saved: 0 });
    expect(p.caps.bnd).to.equal(hostCapBounding());
    expect(p.caps.eff).to.equal(hostCapBounding());
    expect(p.caps.amb).to.equal('0000000000000000');
    expect(p.noNewPrivs).to.equal(0);
  });

  it('starts with no signal ignored or blocked (Node ignores SIGPIPE; the payload must not)', () => {
    const p = probe();
    expect(p.signals.ignored).to.equal('0000000000000000');
    expect(p.signals.blocked).to.equal('0000000000000000');
  });

  it('has a read-only root, proc, sysfs and the host /dev, with no mount of the session dir', () => {
    const p = probe();
    const at = (mp: string) => p.mounts.find((m) => m.mountPoint === mp);
    expect(at('/')!.options).to.match(/^ro,/);
    expect(at('/proc')!.fsType).to.equal('proc');
    expect(at('/sys')!.fsType).to.equal('sysfs');
    expect(at('/dev')!.fsType).to.equal('devtmpfs');
    expect(p.mounts.filter((m) => m.mountPoint.includes('/var/lib/tsrun'))).to.deep.equal([]);
  });
});
