// tsrun as an ordinary user: the user-namespace mode, run with setpriv as the test user that
// scripts/test-prereqs.sh makes (tsrun-test). What the user sees inside, and that nothing
// outlives a run, also when tsrun is killed.
import { expect } from 'chai';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  BUSYBOX,
  DEBIAN,
  expectNothingLeftBehind,
  requireImage,
  Result,
  SIF_FIXTURE,
  TSRUN,
  tsrunProcesses,
  waitFor,
} from '../helpers/run';

const USER = 'tsrun-test';

function account(): { uid: number; gid: number; home: string } | undefined {
  const line = fs
    .readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${USER}:`));
  if (line === undefined) return undefined;
  const f = line.split(':');
  return { uid: Number(f[2]), gid: Number(f[3]), home: f[5] };
}

const setpriv = ['--reuid', USER, '--regid', USER, '--init-groups'];

describe('tsrun as an ordinary user (user namespaces)', function () {
  let user: { uid: number; gid: number; home: string };
  let env: NodeJS.ProcessEnv;
  let fuseMode: number | undefined;
  this.afterAll(() => {
    if (fuseMode !== undefined) fs.chmodSync('/dev/fuse', fuseMode);
  });

  this.beforeAll(function () {
    requireImage(this, DEBIAN, 'run scripts/make-debian-rootfs.sh');
    const found = account();
    if (found === undefined || process.getuid!() !== 0) {
      console.log(
        `      skipped: needs root and the user ${USER} (scripts/test-prereqs.sh adds it)`,
      );
      return this.skip();
    }
    user = found;
    // Debian makes /dev/fuse 0666; this machine has it 0600, which no user can open.
    fuseMode = fs.statSync('/dev/fuse').mode & 0o777;
    fs.chmodSync('/dev/fuse', 0o666);
    env = { PATH: process.env.PATH, HOME: user.home, USER, LANG: 'C.UTF-8' };
    const reach = spawnSync('setpriv', [...setpriv, TSRUN, 'version'], { env, cwd: '/' });
    if (reach.status !== 0) {
      console.log(
        `      skipped: the user ${USER} cannot run ${TSRUN} (a folder above it is not world-readable)`,
      );
      return this.skip();
    }
    const data = path.join(user.home, 'data');
    fs.mkdirSync(data, { recursive: true });
    fs.writeFileSync(path.join(data, 'mine'), 'user data');
    spawnSync('chown', ['-R', `${USER}:`, data]);
  });
  expectNothingLeftBehind();

  function asUser(args: string[], extraEnv: NodeJS.ProcessEnv = {}): Result {
    const r = spawnSync('setpriv', [...setpriv, TSRUN, ...args], {
      encoding: 'utf8',
      cwd: user.home,
      env: { ...env, ...extraEnv },
      timeout: 60000,
    });
    return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
  }

  it("runs the payload as the user, with the user's files as the user's", () => {
    const r = asUser([
      'exec',
      '-B',
      `${user.home}/data:/data`,
      DEBIAN,
      'sh',
      '-c',
      'id -u; id -g; cat /proc/self/uid_map; ls -ln /data/mine; cat /data/mine',
    ]);
    expect(r.stderr).to.equal('');
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).to.equal(String(user.uid));
    expect(lines[1]).to.equal(String(user.gid));
    expect(lines[2].trim().split(/\s+/)).to.deep.equal([String(user.uid), String(user.uid), '1']);
    expect(lines[3]).to.match(new RegExp(`^-\\S+ 1 ${user.uid} ${user.gid} .* /data/mine$`));
    expect(lines[4]).to.equal('user data');
  });

  it('gives the user no capabilities and no_new_privs', () => {
    const r = asUser([
      'exec',
      BUSYBOX,
      'sh',
      '-c',
      'grep -E "^(CapEff|CapPrm|NoNewPrivs)" /proc/self/status',
    ]);
    expect(r.stdout).to.equal(
      'CapPrm:\t0000000000000000\nCapEff:\t0000000000000000\nNoNewPrivs:\t1\n',
    );
  });

  it('is root inside with --fakeroot, mapped to the user', () => {
    const r = asUser([
      'exec',
      '--fakeroot',
      DEBIAN,
      'sh',
      '-c',
      'id -u; head -1 /proc/self/uid_map; echo $HOME; ls -ln /root/data/mine',
    ]);
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).to.equal('0');
    expect(lines[1].trim().split(/\s+/)).to.deep.equal(['0', String(user.uid), '1']);
    expect(lines[2]).to.equal('/root');
    expect(lines[3]).to.match(/^-\S+ 1 0 0 /);
  });

  it("maps the user's /etc/subuid and /etc/subgid ranges with --fakeroot, so chown works", function () {
    const has = (file: string) =>
      fs
        .readFileSync(file, 'utf8')
        .split('\n')
        .some((l) => l.startsWith(`${USER}:`));
    if (!has('/etc/subuid') || !has('/etc/subgid')) {
      console.log(`      skipped: ${USER} has no /etc/subuid and /etc/subgid ranges`);
      return this.skip();
    }
    const script = 'cat /proc/self/uid_map; touch /new && chown 1:2 /new && ls -ln /new';
    const r = asUser(['exec', '--fakeroot', '--writable-tmpfs', DEBIAN, 'sh', '-c', script]);
    expect(r.stderr).to.equal('');
    const lines = r.stdout.trim().split('\n');
    expect(lines[0].trim().split(/\s+/)).to.deep.equal(['0', String(user.uid), '1']);
    expect(lines[1].trim().split(/\s+/).slice(0, 1)).to.deep.equal(['1']);
    expect(lines[2]).to.match(/^-\S+ 1 1 2 0 /);
  });

  it('writes to a tmpfs layer with --writable-tmpfs, and keeps the image as it was', () => {
    const r = asUser(['exec', '--writable-tmpfs', DEBIAN, 'sh', '-c', 'touch /new && ls -ln /new']);
    expect(r.stderr).to.equal('');
    expect(r.stdout).to.match(new RegExp(`^-\\S+ 1 ${user.uid} ${user.gid} 0 `));
    expect(fs.existsSync(path.join(DEBIAN, 'new'))).to.equal(false);
  });

  it('runs with --pid, --contain, --hostname, --net and the prefixed environment', () => {
    const script =
      'cat /proc/1/comm; ls /dev | tr "\\n" " "; echo; hostname; cat /sys/class/net/lo/flags; echo $GREETING';
    const r = asUser(
      ['exec', '--pid', '--contain', '--hostname', 'userbox', '--net', DEBIAN, 'sh', '-c', script],
      {
        SINGULARITYENV_GREETING: 'hello',
      },
    );
    expect(r.stderr).to.equal('');
    expect(r.stdout).to.equal(
      'tsrun-init\nfd full null ptmx pts random shm stderr stdin stdout tty urandom zero \nuserbox\n0x9\nhello\n',
    );
  });

  it('runs a SIF file and a squashfs file through squashfuse, with --writable-tmpfs', function () {
    if (!fs.existsSync(SIF_FIXTURE)) return this.skip();
    const sif = asUser(['exec', SIF_FIXTURE, 'sh', '-c', 'id -u; busybox | head -1']);
    expect(sif.stderr).to.equal('');
    expect(sif.stdout).to.match(new RegExp(`^${user.uid}\\nBusyBox v1\\.`));
    const squashfs = path.join(user.home, 'busybox.sqfs');
    spawnSync('mksquashfs', [BUSYBOX, squashfs, '-noappend', '-quiet'], { stdio: 'ignore' });
    spawnSync('chown', [`${USER}:`, squashfs]);
    const script = 'touch /new && ls -ln /new; grep ^ID= /etc/os-release';
    const r = asUser(['exec', '--writable-tmpfs', squashfs, 'sh', '-c', script]);
    expect(r.stderr).to.equal('');
    expect(r.stdout).to.match(
      new RegExp(`^-\\S+\\s+1 ${user.uid}\\s+${user.gid}\\s+0 .* /new\\nID=busybox\\n$`),
    );
    expect(spawnSync('pgrep', ['-x', 'squashfuse']).status, 'no squashfuse left').to.equal(1);
  });

  it('runs a Debian SIF as the user: id, a bind of ~/data, --writable-tmpfs', function () {
    this.timeout(120000);
    const sif = path.join(user.home, 'debian.sif');
    const built = spawnSync(TSRUN, ['build', '-F', sif, DEBIAN], { encoding: 'utf8' });
    expect(built.status, built.stderr).to.equal(0);
    spawnSync('chown', [`${USER}:`, sif]);
    try {
      expect(asUser(['exec', sif, 'id', '-u']).stdout).to.equal(`${user.uid}\n`);
      const bind = asUser(['exec', '-B', `${user.home}/data:/data`, sif, 'ls', '/data']);
      expect(bind.stdout).to.contain('mine\n');
      const tmpfs = asUser(['exec', '--writable-tmpfs', sif, 'touch', '/new']);
      expect(tmpfs.stderr).to.equal('');
      expect(tmpfs.status).to.equal(0);
    } finally {
      fs.rmSync(sif, { force: true });
    }
  });

  it('ends the run and its squashfuse when the payload is killed with SIGKILL', function () {
    if (!fs.existsSync(SIF_FIXTURE)) return this.skip();
    const r = asUser(['exec', SIF_FIXTURE, 'sh', '-c', 'kill -KILL $$']);
    expect(r.status).to.equal(137);
    expect(spawnSync('pgrep', ['-x', 'squashfuse']).status, 'no squashfuse left').to.equal(1);
  });

  const disabledMessage =
    'tsrun: stage 1: user namespaces are disabled: user.max_user_namespaces is 0 (an admin raises it with sysctl -w user.max_user_namespaces=15000)\n';

  it('names user.max_user_namespaces when it is 0 (set and restored here)', function () {
    const file = '/proc/sys/user/max_user_namespaces';
    const old = fs.readFileSync(file, 'utf8').trim();
    try {
      fs.writeFileSync(file, '0');
    } catch (err) {
      // Writing it takes CAP_SYS_RESOURCE, which this machine's bounding set lacks: the next
      // test sets it in a user namespace of its own instead.
      console.log(
        `      skipped: cannot set user.max_user_namespaces here (${(err as NodeJS.ErrnoException).code}); the next test sets it in a user namespace`,
      );
      return this.skip();
    }
    try {
      const r = asUser(['exec', BUSYBOX, 'true']);
      expect(r.status).to.equal(255);
      expect(r.stderr).to.equal(disabledMessage);
    } finally {
      fs.writeFileSync(file, old);
    }
  });

  it('names user.max_user_namespaces when it is 0 in the user namespace it runs in', () => {
    // The limit holds for the namespace it is set in and every namespace below it. Root makes a
    // user namespace that maps every id to itself (where it holds CAP_SYS_RESOURCE), sets the
    // limit to 0 there, and runs tsrun as the user inside it: the host's setting is untouched.
    // The shell that waits for the maps lost its capabilities at its execve (no ids were mapped
    // then); the one it execs once they are written is root in the namespace, with all of them.
    const inner = `echo 0 > /proc/sys/user/max_user_namespaces
      cat /proc/sys/user/max_user_namespaces >&2
      cd / && exec setpriv "$@"`;
    const script = `
      set -e
      fifo=$(mktemp -u); mkfifo "$fifo"
      unshare --user sh -c 'read go < "$1"; shift; exec sh -c "$INNER" sh "$@"' \
        sh "$fifo" ${setpriv.join(' ')} "$TSRUN" exec "$BUSYBOX" true &
      pid=$!
      while [ "$(readlink /proc/$pid/ns/user)" = "$(readlink /proc/self/ns/user)" ]; do sleep 0.01; done
      echo '0 0 4294967295' > /proc/$pid/uid_map
      echo '0 0 4294967295' > /proc/$pid/gid_map
      echo go > "$fifo"; rm -f "$fifo"
      set +e; wait $pid; echo "status $?" >&2`;
    const r = spawnSync('bash', ['-c', script], {
      encoding: 'utf8',
      env: { ...env, TSRUN, BUSYBOX, INNER: inner },
      timeout: 60000,
    });
    expect(r.stderr).to.equal(`0\n${disabledMessage}status 255\n`);
    expect(fs.readFileSync('/proc/sys/user/max_user_namespaces', 'utf8').trim()).to.not.equal('0');
  });

  it('says plainly what it cannot do without root yet', () => {
    const ext3 = path.join(user.home, 'busybox.ext3');
    fs.writeFileSync(ext3, '');
    fs.truncateSync(ext3, 32 << 20);
    spawnSync('mkfs.ext3', ['-q', '-F', ext3]);
    const r = asUser(['exec', ext3, 'true']);
    expect(r.status).to.equal(255);
    expect(r.stderr).to.equal(
      `tsrun: stage 1: image '${ext3}' is an ext3 file: without root (user-namespace mode) tsrun runs sandbox directories, squashfs and SIF files with a squashfs partition only so far\n`,
    );
    const cg = asUser(['exec', '--apply-cgroups', '/dev/null', BUSYBOX, 'true']);
    expect(cg.stderr).to.contain('only root can apply cgroups');
  });

  it('leaves no process or mount behind when tsrun is killed with SIGKILL', async () => {
    const child = spawn(
      'setpriv',
      [...setpriv, TSRUN, 'exec', '--pid', DEBIAN, 'sh', '-c', 'echo up; sleep 30'],
      {
        cwd: user.home,
        env,
        stdio: ['ignore', 'pipe', 'ignore'],
      },
    );
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    await waitFor(() => out.includes('up'), 15000);
    child.kill('SIGKILL');
    await new Promise((resolve) => child.on('exit', resolve));
    await waitFor(
      () =>
        tsrunProcesses().length === 0 && !spawnSync('pgrep', ['-u', USER, 'sleep']).stdout.length,
      5000,
    );
    // Dead processes that this machine's pid 1 has not reaped yet (state Z) do not count.
    const ps = spawnSync('ps', ['-o', 'stat=,pid=,cmd=', '-u', USER], { encoding: 'utf8' });
    const alive = ps.stdout.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('Z'));
    expect(alive).to.deep.equal([]);
  });
});
