// Capabilities, --security uid/gid, no_new_privs, seccomp profiles and `tsrun capability`, as a
// user runs them, as root, on the busybox image and the Debian rootfs.
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  BUSYBOX,
  DEBIAN,
  expectNothingLeftBehind,
  requireImage,
  Result,
  tsrun,
  TSRUN,
} from '../helpers/run';

const CAP_NET_RAW = 13;
const CAP_SYS_RESOURCE = 24;
const ZERO = '0000000000000000';

/** The Cap* lines of /proc/self/status as the payload sees them: {CapEff: 'hex', ...}. */
function capsOf(flags: string[], image = BUSYBOX): Record<string, string> {
  const r = tsrun([
    'exec',
    ...flags,
    image,
    'grep',
    '-E',
    '^(Cap|NoNewPrivs)',
    '/proc/self/status',
  ]);
  expect(r.status, r.stderr).to.equal(0);
  return Object.fromEntries(
    r.stdout
      .trim()
      .split('\n')
      .map((l) => l.split(/:\s+/)),
  );
}

function hostBounding(): bigint {
  const line = fs.readFileSync('/proc/self/status', 'utf8').match(/^CapBnd:\s+(\w+)$/m)!;
  return BigInt(`0x${line[1]}`);
}

const hex = (mask: bigint): string => mask.toString(16).padStart(16, '0');
const bit = (cap: number): bigint => 1n << BigInt(cap);

/** Runs tsrun as nobody (uid and gid 65534, no groups). */
function tsrunAsNobody(args: string[]): Result {
  const r = spawnSync(
    'setpriv',
    ['--reuid=65534', '--regid=65534', '--clear-groups', TSRUN, ...args],
    { encoding: 'utf8', cwd: '/', timeout: 60000 },
  );
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

/** Opens a raw ICMP socket in the Debian rootfs (perl-base is in every Debian). */
const RAW_SOCKET = [
  'perl',
  '-e',
  'use Socket; socket(my $s, PF_INET, SOCK_RAW, 1) or die "raw socket: $!\\n"; print "raw\\n"',
];

describe('capabilities of the payload', function () {
  this.beforeAll(function () {
    requireImage(this, BUSYBOX, 'run scripts/setup.sh');
  });
  expectNothingLeftBehind();

  it("keeps root's bounding set with --keep-privs, as without it, with no_new_privs unset", () => {
    const caps = capsOf(['--keep-privs']);
    expect(caps.CapEff).to.equal(hex(hostBounding()));
    expect(caps.CapBnd).to.equal(hex(hostBounding()));
    expect(caps.NoNewPrivs).to.equal('0');
  });

  it('has no capability in any set with --no-privs', () => {
    const caps = capsOf(['--no-privs']);
    for (const set of ['CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb']) {
      expect(caps[set], set).to.equal(ZERO);
    }
  });

  it('has only the added capabilities with --no-privs --add-caps', () => {
    const caps = capsOf(['--no-privs', '--add-caps', 'net_raw,CAP_CHOWN']);
    const mask = hex(bit(CAP_NET_RAW) | bit(0));
    expect([caps.CapEff, caps.CapPrm, caps.CapBnd]).to.deep.equal([mask, mask, mask]);
  });

  it('gets the whole bounding set back with --no-privs --add-caps ALL', () => {
    expect(capsOf(['--no-privs', '--add-caps', 'ALL']).CapBnd).to.equal(hex(hostBounding()));
  });

  it('lacks CAP_NET_RAW in every set with --drop-caps CAP_NET_RAW', () => {
    const caps = capsOf(['--drop-caps', 'CAP_NET_RAW']);
    const mask = hex(hostBounding() & ~bit(CAP_NET_RAW));
    expect([caps.CapEff, caps.CapPrm, caps.CapBnd]).to.deep.equal([mask, mask, mask]);
  });

  it('can ping, and cannot with --drop-caps CAP_NET_RAW (ping needs a raw socket here)', function () {
    if (fs.readFileSync('/proc/sys/net/ipv4/ping_group_range', 'utf8').trim() !== '1\t0') {
      console.log('      skipped: ping_group_range lets ping do without a raw socket');
      return this.skip();
    }
    expect(tsrun(['exec', BUSYBOX, 'ping', '-c1', '127.0.0.1']).status).to.equal(0);
    const r = tsrun(['exec', '--drop-caps', 'CAP_NET_RAW', BUSYBOX, 'ping', '-c1', '127.0.0.1']);
    expect(r.status).to.equal(1);
    expect(r.stderr).to.equal('ping: permission denied (are you root?)\n');
  });

  it('cannot open a raw socket with --drop-caps CAP_NET_RAW: EPERM', function () {
    requireImage(this, DEBIAN, 'run scripts/make-debian-rootfs.sh');
    expect(tsrun(['exec', DEBIAN, ...RAW_SOCKET]).stdout).to.equal('raw\n');
    const r = tsrun(['exec', '--drop-caps', 'net_raw', DEBIAN, ...RAW_SOCKET]);
    expect(r.stderr).to.equal('raw socket: Operation not permitted\n');
    expect(r.status).to.not.equal(0);
  });

  it('never asks for a capability outside the bounding set, and warns about one asked by name', function () {
    if ((hostBounding() & bit(CAP_SYS_RESOURCE)) !== 0n) {
      console.log('      skipped: the bounding set of this machine has CAP_SYS_RESOURCE');
      return this.skip();
    }
    const r = tsrun(['exec', '--no-privs', '--add-caps', 'sys_resource,net_raw', BUSYBOX, 'true']);
    expect(r.status).to.equal(0);
    expect(r.stderr).to.match(/capabilities outside the bounding set are not given.*SYS_RESOURCE/);
  });

  it('refuses an unknown capability with one line naming it', () => {
    const r = tsrun(['exec', '--add-caps', 'net_raw,cap_fly', BUSYBOX, 'true']);
    expect(r.stderr).to.equal("tsrun: --add-caps: unknown capability 'cap_fly'\n");
    expect(r.status).to.equal(255);
    const d = tsrun(['exec', '--drop-caps', 'FLY', BUSYBOX, 'true']);
    expect(d.stderr).to.equal("tsrun: --drop-caps: unknown capability 'FLY'\n");
  });

  it('refuses --keep-privs with --no-privs', () => {
    const r = tsrun(['exec', '--keep-privs', '--no-privs', BUSYBOX, 'true']);
    expect(r.stderr).to.equal('tsrun: --keep-privs and --no-privs exclude each other\n');
    expect(r.status).to.equal(255);
  });
});

describe('--security uid and gid', function () {
  this.beforeAll(function () {
    requireImage(this, BUSYBOX, 'run scripts/setup.sh');
  });
  expectNothingLeftBehind();

  it('runs the payload as that uid and those gids, with no capability and no_new_privs', () => {
    const r = tsrun(['exec', '--security', 'uid:65534,gid:65534:100', BUSYBOX, 'id']);
    expect(r.stdout).to.equal('uid=65534(nobody) gid=65534(nobody) groups=100,65534(nobody)\n');
    const caps = capsOf(['--security', 'uid:65534,gid:65534']);
    expect([caps.CapEff, caps.CapBnd, caps.CapAmb, caps.NoNewPrivs]).to.deep.equal([
      ZERO,
      ZERO,
      ZERO,
      '1',
    ]);
  });

  it('keeps --add-caps capabilities across the uid change as ambient ones', () => {
    const caps = capsOf(['--security', 'uid:65534', '--add-caps', 'CAP_NET_RAW']);
    const mask = hex(bit(CAP_NET_RAW));
    expect([caps.CapEff, caps.CapAmb, caps.CapBnd]).to.deep.equal([mask, mask, mask]);
  });

  it('is refused for a non-root caller with one line', () => {
    const r = tsrunAsNobody(['exec', '--security', 'uid:0', BUSYBOX, 'true']);
    expect(r.stderr).to.equal('tsrun: --security uid and gid are for root only\n');
    expect(r.status).to.equal(255);
  });
});

describe('--security seccomp', function () {
  let dir: string;
  const profile = (name: string, text: string): string => {
    const file = path.join(dir, name);
    fs.writeFileSync(file, text);
    return file;
  };
  let deny: string;

  this.beforeAll(function () {
    requireImage(this, DEBIAN, 'run scripts/make-debian-rootfs.sh');
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-seccomp-e2e-'));
    deny = profile(
      'deny.json',
      JSON.stringify({
        defaultAction: 'SCMP_ACT_ALLOW',
        architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'],
        syscalls: [
          { names: ['unshare', 'mount', 'umount2'], action: 'SCMP_ACT_ERRNO', errnoRet: 1 },
        ],
      }),
    );
  });
  this.afterAll(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });
  expectNothingLeftBehind();

  it('can unshare -r and mount without a profile', () => {
    expect(tsrun(['exec', DEBIAN, 'unshare', '-r', 'true']).status).to.equal(0);
    expect(tsrun(['exec', DEBIAN, 'mount', '-t', 'tmpfs', 'none', '/mnt']).status).to.equal(0);
  });

  it('cannot unshare -r under a profile that forbids unshare: EPERM', () => {
    const r = tsrun(['exec', '--security', `seccomp:${deny}`, DEBIAN, 'unshare', '-r', 'true']);
    expect(r.stderr).to.equal('unshare: unshare failed: Operation not permitted\n');
    expect(r.status).to.equal(1);
  });

  it('cannot mount under a profile that forbids mount: EPERM', function () {
    const r = tsrun([
      'exec',
      '--security',
      `seccomp:${deny}`,
      DEBIAN,
      'mount',
      '-t',
      'tmpfs',
      'none',
      '/mnt',
    ]);
    expect(r.status).to.equal(32);
    expect(r.stderr).to.match(/^mount: \/mnt: permission denied\./);
    if (process.arch !== 'x64') return;
    // The system call itself, to see its errno (165 is mount on x86-64): mount(8) rewords it.
    const perl =
      'my @a = ("none", "/mnt", "tmpfs"); syscall(165, @a, 0, 0) == 0 or die "mount: $!\\n"';
    const p = tsrun(['exec', '--security', `seccomp:${deny}`, DEBIAN, 'perl', '-e', perl]);
    expect(p.stderr).to.equal('mount: Operation not permitted\n');
  });

  it('filters the payload only (seccomp mode 2), with no_new_privs unset for root', () => {
    const caps = capsOf(['--security', `seccomp:${deny}`], DEBIAN);
    expect(caps.NoNewPrivs).to.equal('0');
    const r = tsrun([
      'exec',
      '--security',
      `seccomp:${deny}`,
      DEBIAN,
      'grep',
      '^Seccomp:',
      '/proc/self/status',
    ]);
    expect(r.stdout).to.equal('Seccomp:\t2\n');
  });

  it('sets no_new_privs to load the filter when the payload lacks CAP_SYS_ADMIN', () => {
    const r = tsrun([
      'exec',
      '--no-privs',
      '--security',
      `seccomp:${deny}`,
      DEBIAN,
      'sh',
      '-c',
      'grep -E "^(Seccomp|NoNewPrivs):" /proc/self/status; unshare -r true',
    ]);
    expect(r.stdout).to.equal('NoNewPrivs:\t1\nSeccomp:\t2\n');
    expect(r.status).to.equal(1);
  });

  it('ends the payload with SIGSYS (exit 159) for SCMP_ACT_KILL_PROCESS', () => {
    const kill = profile(
      'kill.json',
      '{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["uname"], "action": "SCMP_ACT_KILL_PROCESS"}]}',
    );
    expect(tsrun(['exec', '--security', `seccomp:${kill}`, DEBIAN, 'uname']).status).to.equal(159);
  });

  it('reads a relative profile path from the current directory', () => {
    const r = tsrun(['exec', '--security', 'seccomp:deny.json', DEBIAN, 'unshare', '-r', 'true'], {
      cwd: dir,
    });
    expect(r.status).to.equal(1);
  });

  it('refuses a profile that is not JSON with one line naming the file', () => {
    const bad = profile('bad.json', '{"defaultAction": ');
    const r = tsrun(['exec', '--security', `seccomp:${bad}`, DEBIAN, 'true']);
    expect(r.stderr).to.match(
      new RegExp(`^tsrun: stage 1: seccomp profile '${bad}': not valid JSON: [^\\n]+\\n$`),
    );
    expect(r.status).to.equal(255);
  });

  it('refuses an unknown system call name and an unknown action with one line each', () => {
    const unknown = profile(
      'unknown.json',
      '{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mount", "mountt"], "action": "SCMP_ACT_ERRNO"}]}',
    );
    const r = tsrun(['exec', '--security', `seccomp:${unknown}`, DEBIAN, 'true']);
    expect(r.stderr).to.equal(
      `tsrun: stage 1: seccomp profile '${unknown}': syscalls[0].names[1]: unknown system call 'mountt'\n`,
    );
    expect(r.status).to.equal(255);
    const action = profile('action.json', '{"defaultAction": "SCMP_ACT_PERMIT"}');
    const a = tsrun(['exec', '--security', `seccomp:${action}`, DEBIAN, 'true']);
    expect(a.stderr).to.equal(
      `tsrun: stage 1: seccomp profile '${action}': defaultAction: unknown action 'SCMP_ACT_PERMIT'\n`,
    );
  });

  it('refuses a missing profile and an unknown --security kind', () => {
    const missing = path.join(dir, 'missing.json');
    const r = tsrun(['exec', '--security', `seccomp:${missing}`, DEBIAN, 'true']);
    expect(r.stderr).to.equal(`tsrun: stage 1: seccomp profile '${missing}': does not exist\n`);
    const k = tsrun(['exec', '--security', 'selinux:x', DEBIAN, 'true']);
    expect(k.stderr).to.equal("tsrun: --security 'selinux:x': selinux is not supported by tsrun\n");
  });
});

describe('tsrun capability', function () {
  let dir: string;
  let file: string;
  let env: NodeJS.ProcessEnv;
  const cap = (...args: string[]): Result => tsrun(['capability', ...args], { env });

  this.beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-capability-'));
    file = path.join(dir, 'etc', 'capability.json');
    env = { ...process.env, TSRUN_CAPABILITY_FILE: file };
  });
  this.afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('adds a capability to a user, lists it, and drops it', () => {
    expect(cap('add', '--user', 'nobody', 'CAP_NET_RAW')).to.include({ status: 0, stderr: '' });
    expect(cap('list').stdout).to.equal('nobody [user]: CAP_NET_RAW\n');
    expect(cap('list', '--user', 'nobody').stdout).to.equal('nobody [user]: CAP_NET_RAW\n');
    expect(cap('drop', '--user', 'nobody', 'net_raw').status).to.equal(0);
    expect(cap('list', '--user', 'nobody').stdout).to.equal('nobody [user]:\n');
    expect(cap('list').stdout).to.equal('');
  });

  it('keeps grants in a root-owned JSON file, mode 0644, users and groups apart', () => {
    cap('add', '-u', 'nobody', 'net_raw,chown');
    cap('add', '-g', 'nogroup', 'CAP_KILL');
    cap('add', '-u', 'nobody', 'CAP_CHOWN');
    const st = fs.statSync(file);
    expect([st.uid, st.mode & 0o7777]).to.deep.equal([0, 0o644]);
    expect(JSON.parse(fs.readFileSync(file, 'utf8'))).to.deep.equal({
      users: { nobody: ['CAP_NET_RAW', 'CAP_CHOWN'] },
      groups: { nogroup: ['CAP_KILL'] },
    });
    expect(cap('list').stdout).to.equal(
      'nobody [user]: CAP_NET_RAW,CAP_CHOWN\nnogroup [group]: CAP_KILL\n',
    );
  });

  it('refuses an unknown user, an unknown capability and a missing --user or --group', () => {
    expect(cap('add', '--user', 'no-such-user', 'net_raw').stderr).to.equal(
      "tsrun: capability add: user 'no-such-user' does not exist on this host\n",
    );
    expect(cap('add', '--user', 'nobody', 'CAP_FLY').stderr).to.equal(
      "tsrun: capability add: unknown capability 'CAP_FLY'\n",
    );
    const r = cap('drop', 'net_raw');
    expect(r.stderr).to.equal('tsrun: capability drop: name a --user or a --group\n');
    expect(r.status).to.equal(255);
    expect(fs.existsSync(file)).to.equal(false);
  });

  it('is for root only', () => {
    const r = tsrunAsNobody(['capability', 'list']);
    expect(r.stderr).to.equal('tsrun: capability list: only root manages capabilities\n');
    expect(r.status).to.equal(255);
  });
});
