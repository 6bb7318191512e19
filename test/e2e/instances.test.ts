// Instances: `tsrun instance start|list|stop` and `exec instance://NAME`, as root and as the
// ordinary user tsrun-test. A web server instance on a loopback port, joins that see the
// instance's namespaces, a master killed with SIGKILL, 20 instances at once, names, users; after
// each test no instance, tsrun process, tsrun-init, mount or loop device is left.
import { expect } from 'chai';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  BUSYBOX,
  expectNoNewLoopDevices,
  expectNothingLeftBehind,
  leftCgroups,
  parentOf,
  requireImage,
  Result,
  SIF_FIXTURE,
  TSRUN,
  tsrun,
  tsrunAsync,
  waitFor,
} from '../helpers/run';

const USER = 'tsrun-test';
const setpriv = ['--reuid', USER, '--regid', USER, '--init-groups'];

function asUser(args: string[]): Result {
  const r = spawnSync('setpriv', [...setpriv, TSRUN, ...args], {
    encoding: 'utf8',
    cwd: '/',
    env: { PATH: process.env.PATH, LANG: 'C.UTF-8' },
    timeout: 60000,
  });
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

function homeOf(user: string): string | undefined {
  const line = fs
    .readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${user}:`));
  return line?.split(':')[5];
}

/** Where the instances of the user whose home is `home` keep their state. */
function stateDir(home = os.homedir()): string {
  return path.join(home, '.tsrun', 'instances', os.hostname());
}

function pgrep(name: string): string[] {
  const r = spawnSync('pgrep', ['-x', name], { encoding: 'utf8' });
  return r.stdout.split('\n').filter((l) => l !== '');
}

interface Listed {
  instance: string;
  pid: number;
  img: string;
  logOutPath: string;
  logErrPath: string;
}

function list(run: (args: string[]) => Result = tsrun): Listed[] {
  const r = run(['instance', 'list', '--json']);
  expect(r.stderr).to.equal('');
  return (JSON.parse(r.stdout) as { instances: Listed[] }).instances;
}

/** Whether something accepts connections on 127.0.0.1:port. */
function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    sock.on('connect', () => (sock.destroy(), resolve(true)));
    sock.on('error', () => resolve(false));
  });
}

function fetch(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    http
      .get(`http://127.0.0.1:${port}/`, (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (d: string) => (body += d));
        res.on('end', () => resolve(body));
      })
      .on('error', reject);
  });
}

/** A free TCP port on the loopback interface. */
function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = net.createServer().listen(0, '127.0.0.1', () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
  });
}

describe('instances', function () {
  this.timeout(120000);
  let dir: string;
  let web: string;

  this.beforeAll(function () {
    requireImage(this, BUSYBOX, 'run scripts/setup.sh');
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-instances-'));
    fs.chmodSync(dir, 0o755);
    // The busybox image with a startscript that serves /www with busybox httpd on port $1.
    web = path.join(dir, 'web');
    execFileSync('cp', ['-a', BUSYBOX, web]);
    fs.mkdirSync(path.join(web, 'www'));
    fs.writeFileSync(path.join(web, 'www', 'index.html'), 'hello from the instance\n');
    fs.writeFileSync(
      path.join(web, '.singularity.d', 'startscript'),
      '#!/bin/sh\necho "serving on $1" >&2\nexec httpd -f -p "127.0.0.1:$1" -h /www\n',
      { mode: 0o755 },
    );
  });
  const began = Date.now();
  this.afterAll(() => {
    tsrun(['instance', 'stop', '--all', '--force']);
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
    // The logs these tests' instances kept (root's and the user's), written since they began.
    for (const home of [os.homedir(), homeOf(USER)]) {
      const logs = path.join(stateDir(home ?? '/nonexistent'), 'logs');
      if (!fs.existsSync(logs)) continue;
      for (const f of fs.readdirSync(logs)) {
        if (fs.statSync(path.join(logs, f)).mtimeMs >= began - 1000) fs.rmSync(path.join(logs, f));
      }
    }
  });
  // Tests that do not stop their instances leave it to this hook: stopped, they must be gone.
  afterEach(async () => {
    const stop = tsrun(['instance', 'stop', '--all', '--force']);
    expect(stop.stderr).to.equal('');
    expect(list()).to.deep.equal([]);
    await waitFor(() => pgrep('tsrun-init').length === 0, 2000).catch(() => undefined);
    expect(pgrep('tsrun-init'), 'tsrun-init left').to.deep.equal([]);
  });

  expectNothingLeftBehind();
  expectNoNewLoopDevices();

  it('serves a page from a web server instance to the host and to a join, then frees the port', async () => {
    const port = await freePort();
    const start = tsrun(['instance', 'start', web, 'web', String(port)]);
    expect(start.stderr).to.equal('');
    expect(start.status).to.equal(0);
    await waitFor(() => pgrep('httpd').length === 1, 5000);
    expect(await fetch(port)).to.equal('hello from the instance\n');
    const join = tsrun(['exec', `instance://web`, 'wget', '-qO-', `http://127.0.0.1:${port}/`]);
    expect(join.stderr).to.equal('');
    expect(join.stdout).to.equal('hello from the instance\n');
    const [listed] = list();
    expect(listed).to.include({ instance: 'web', img: web });
    const stop = tsrun(['instance', 'stop', 'web']);
    expect(stop.stderr).to.equal('');
    expect(stop.status).to.equal(0);
    expect(await listening(port), 'port still taken').to.equal(false);
    expect(pgrep('httpd')).to.deep.equal([]);
    expect(list()).to.deep.equal([]);
    // The log that holds something stays; an empty one goes.
    expect(fs.readFileSync(listed.logErrPath, 'utf8')).to.equal(`serving on ${port}\n`);
    expect(fs.existsSync(listed.logOutPath), 'empty stdout log').to.equal(false);
  });

  it("joins the instance's mount, pid, ipc and uts namespaces, with an exit code of its own", () => {
    const start = tsrun(['instance', 'start', '--hostname', 'inst-host', BUSYBOX, 'ns']);
    expect(start.stderr).to.equal('');
    const [{ pid }] = list();
    const own = (kind: string) => fs.readlinkSync(`/proc/${pid}/ns/${kind}`);
    const script =
      'for k in mnt pid ipc uts; do readlink /proc/self/ns/$k; done; hostname; cat /proc/1/comm; echo $$; exit 7';
    const r = tsrun(['exec', 'instance://ns', 'sh', '-c', script]);
    expect(r.stderr).to.equal('');
    expect(r.status).to.equal(7);
    const lines = r.stdout.trim().split('\n');
    expect(lines.slice(0, 4)).to.deep.equal(['mnt', 'pid', 'ipc', 'uts'].map(own));
    expect(lines[4]).to.equal('inst-host');
    expect(lines[5]).to.equal('tsrun-init');
    expect(Number(lines[6])).to.be.greaterThan(1);
    // The same mount table as the instance's pid 1, through `shell`.
    const shell = tsrun(['shell', 'instance://ns'], {
      input: 'cat /proc/self/mountinfo | wc -l\n',
    });
    expect(shell.status).to.equal(0);
    const mounts = fs.readFileSync(`/proc/${pid}/mountinfo`, 'utf8').trim().split('\n').length;
    expect(Number(shell.stdout.trim())).to.equal(mounts);
  });

  it('lists a killed master as gone, and starts a new instance of the same name', async () => {
    expect(tsrun(['instance', 'start', BUSYBOX, 'k']).status).to.equal(0);
    const state = JSON.parse(fs.readFileSync(path.join(stateDir(), 'k.json'), 'utf8')) as {
      masterPid: number;
      pid: number;
    };
    process.kill(state.masterPid, 'SIGKILL');
    // The container dies with its master (parent-death signal).
    await waitFor(() => !fs.existsSync(`/proc/${state.pid}`), 5000);
    expect(list()).to.deep.equal([]);
    const again = tsrun(['instance', 'start', BUSYBOX, 'k']);
    expect(again.stderr).to.equal('');
    expect(list().map((i) => i.instance)).to.deep.equal(['k']);
  });

  it('leaves no cgroup of an instance stopped with -s KILL, nor of one whose master was killed', async () => {
    const limits = path.join(dir, 'pids.json');
    fs.writeFileSync(limits, JSON.stringify({ pids: { limit: 50 } }));
    expect(tsrun(['instance', 'start', '--apply-cgroups', limits, BUSYBOX, 'cg']).status).to.equal(
      0,
    );
    expect(leftCgroups()).to.have.length(1);
    // SIGKILL goes to pid 1, not to the master: the master still removes the cgroup.
    const stop = tsrun(['instance', 'stop', '-s', 'KILL', 'cg']);
    expect(stop.stderr).to.equal('');
    expect(leftCgroups()).to.deep.equal([]);
    expect(tsrun(['instance', 'start', '--apply-cgroups', limits, BUSYBOX, 'cg']).status).to.equal(
      0,
    );
    const [listed] = list();
    const master = parentOf(listed.pid);
    process.kill(master, 'SIGKILL');
    await waitFor(() => !fs.existsSync(`/proc/${listed.pid}`), 5000);
    // The next command that finds the instance stale removes what its master left.
    expect(list()).to.deep.equal([]);
    expect(leftCgroups()).to.deep.equal([]);
    const freeze = tsrun(['instance', 'stop', '-s', 'STOP', 'cg']);
    expect(freeze.stderr).to.equal(
      'tsrun: --signal STOP: it would freeze the instance, not stop it\n',
    );
  });

  it('starts 20 instances in parallel, lists them all and stops them all', async () => {
    const names = Array.from({ length: 20 }, (_, i) => `par-${i}`);
    const runs = names.map((n) => tsrunAsync(['instance', 'start', BUSYBOX, n]).done);
    const results = await Promise.all(runs);
    for (const r of results) expect(r.stderr).to.equal('');
    expect(results.map((r) => r.status)).to.deep.equal(names.map(() => 0));
    expect(
      list()
        .map((i) => i.instance)
        .sort(),
    ).to.deep.equal([...names].sort());
    expect(pgrep('tsrun-init')).to.have.length(20);
    const stop = tsrun(['instance', 'stop', 'par-*']);
    expect(stop.stderr).to.equal('');
    expect(list()).to.deep.equal([]);
  });

  it('gives exactly one instance and one refusal for two starts of a name at once', async () => {
    const [a, b] = await Promise.all([
      tsrunAsync(['instance', 'start', BUSYBOX, 'twice']).done,
      tsrunAsync(['instance', 'start', BUSYBOX, 'twice']).done,
    ]);
    expect([a.status, b.status].sort()).to.deep.equal([0, 255]);
    expect(a.stderr + b.stderr).to.equal(
      "tsrun: instance 'twice' already exists (stop it first)\n",
    );
    expect(list().map((i) => i.instance)).to.deep.equal(['twice']);
  });

  it('refuses bad names, a name in use, an unknown instance, and changes to a made container', () => {
    for (const name of ['a/b', '.hidden', 'sp ace', 'x:y', '']) {
      const r = tsrun(['instance', 'start', BUSYBOX, name]);
      expect(r.status, name).to.equal(255);
      expect(r.stderr, name).to.match(/^tsrun: instance name '.*' is invalid: .*\n$/);
    }
    expect(tsrun(['instance', 'start', BUSYBOX, 'used']).status).to.equal(0);
    const used = tsrun(['instance', 'start', BUSYBOX, 'used']);
    expect(used.status).to.equal(255);
    expect(used.stderr).to.equal("tsrun: instance 'used' already exists (stop it first)\n");
    const unknown = tsrun(['exec', 'instance://nothere', 'true']);
    expect(unknown.stderr).to.equal("tsrun: no instance named 'nothere' is running\n");
    expect(unknown.status).to.equal(255);
    const stopUnknown = tsrun(['instance', 'stop', 'nothere']);
    expect(stopUnknown.stderr).to.equal("tsrun: no instance named 'nothere' is running\n");
    const bind = tsrun(['exec', '-B', '/tmp:/mnt', 'instance://used', 'true']);
    expect(bind.stderr).to.equal(
      "tsrun: --bind cannot be used with instance://used: the instance's container is made\n",
    );
    expect(bind.status).to.equal(255);
    const noHome = tsrun(['exec', '--no-home', 'instance://used', 'true']);
    expect(noHome.stderr).to.equal(
      "tsrun: --no-home cannot be used with instance://used: the instance's home is mounted\n",
    );
    // The instances found stop; the name not found is the error.
    const partial = tsrun(['instance', 'stop', 'used', 'nothere']);
    expect(partial.stderr).to.equal("tsrun: no instance named 'nothere' is running\n");
    expect(partial.status).to.equal(255);
    expect(list()).to.deep.equal([]);
  });

  it('stops an instance that is still starting once it is up', async () => {
    const state = stateDir();
    const start = tsrunAsync(['instance', 'start', BUSYBOX, 'early']);
    await waitFor(() => fs.existsSync(path.join(state, 'early.lock')), 5000);
    expect(fs.existsSync(path.join(state, 'early.json')), 'already up').to.equal(false);
    const stop = tsrun(['instance', 'stop', 'early']);
    expect(stop.stderr).to.equal('');
    expect(stop.status).to.equal(0);
    expect((await start.done).status).to.equal(0);
    expect(list()).to.deep.equal([]);
  });

  it('stops an instance whose start was interrupted, and exits with the signal', async () => {
    const run = tsrunAsync(['instance', 'start', BUSYBOX, 'interrupted']);
    // The wrapper has started the master (detached: Ctrl-C on a terminal reaches the wrapper).
    const children = () =>
      fs.readFileSync(`/proc/${run.pid}/task/${run.pid}/children`, 'utf8').trim();
    await waitFor(() => children() !== '', 5000);
    process.kill(run.pid, 'SIGINT');
    const r = await run.done;
    expect(r.stderr).to.equal("tsrun: instance 'interrupted' stopped: SIGINT while it started\n");
    expect(r.status).to.equal(130);
    expect(list()).to.deep.equal([]);
    expect(pgrep('tsrun-init')).to.deep.equal([]);
  });

  it("fails with the instance's own error, leaving only its logs", () => {
    const r = tsrun(['instance', 'start', path.join(dir, 'missing'), 'broken']);
    expect(r.status).to.equal(255);
    expect(r.stderr).to.equal(
      `tsrun: instance 'broken' failed to start: stage 1: image '${path.join(dir, 'missing')}' does not exist\n`,
    );
    const state = stateDir();
    expect(fs.readdirSync(state).filter((f) => f.startsWith('broken'))).to.deep.equal([]);
    // With -d the log holds debug records too; the message is still the one fatal line.
    const debug = tsrun(['-d', 'instance', 'start', path.join(dir, 'missing'), 'broken']);
    expect(debug.status).to.equal(255);
    const log = path.join(state, 'logs', 'broken.err');
    expect(debug.stderr.trimEnd().split('\n').pop()).to.equal(
      `tsrun: instance 'broken' failed to start: stage 1: image '${path.join(dir, 'missing')}' does not exist (log: ${log})`,
    );
    expect(fs.readFileSync(log, 'utf8')).to.match(/\bDEBUG: .*"stack":"TsrunError: stage 1: /);
  });

  it('sends SIGKILL after --timeout to an instance that ignores the signal', () => {
    const stubborn = path.join(dir, 'stubborn');
    execFileSync('cp', ['-a', BUSYBOX, stubborn]);
    fs.writeFileSync(
      path.join(stubborn, '.singularity.d', 'startscript'),
      "#!/bin/sh\ntrap '' TERM\nwhile :; do sleep 1; done\n",
      { mode: 0o755 },
    );
    expect(tsrun(['instance', 'start', stubborn, 'stubborn']).status).to.equal(0);
    const begin = Date.now();
    const r = tsrun(['instance', 'stop', '-t', '1', 'stubborn']);
    expect(r.stderr).to.equal('');
    expect(r.status).to.equal(0);
    // Not a timing check: it shows the stop waited for the timeout before its SIGKILL.
    expect(Date.now() - begin).to.be.at.least(1000);
    expect(list()).to.deep.equal([]);
  });

  it('runs a SIF instance with --writable-tmpfs and frees its loop device when stopped', function () {
    if (!fs.existsSync(SIF_FIXTURE)) return this.skip();
    expect(tsrun(['instance', 'start', '--writable-tmpfs', SIF_FIXTURE, 'sif']).status).to.equal(0);
    const a = tsrun(['exec', 'instance://sif', 'sh', '-c', 'echo kept > /made-here']);
    expect(a.stderr).to.equal('');
    const b = tsrun(['exec', 'instance://sif', 'cat', '/made-here']);
    expect(b.stdout, 'one join sees what another wrote').to.equal('kept\n');
    expect(tsrun(['instance', 'stop', 'sif']).status).to.equal(0);
  });

  describe('as an ordinary user', function () {
    this.beforeAll(function () {
      if (spawnSync('id', ['-u', USER]).status !== 0) {
        console.log(`      skipped: no user ${USER} (scripts/test-prereqs.sh adds it)`);
        return this.skip();
      }
      if (spawnSync('setpriv', [...setpriv, TSRUN, 'version'], { cwd: '/' }).status !== 0) {
        console.log(`      skipped: the user ${USER} cannot run ${TSRUN}`);
        return this.skip();
      }
    });
    afterEach(() => {
      asUser(['instance', 'stop', '--all', '--force']);
    });

    it("runs, joins and stops the user's own instance in a user namespace", () => {
      const uid = execFileSync('id', ['-u', USER], { encoding: 'utf8' }).trim();
      const start = asUser(['instance', 'start', BUSYBOX, 'mine']);
      expect(start.stderr).to.equal('');
      expect(start.status).to.equal(0);
      const [listed] = list(asUser);
      expect(listed.instance).to.equal('mine');
      expect(fs.statSync(`/proc/${listed.pid}`).uid).to.equal(Number(uid));
      const r = asUser(['exec', 'instance://mine', 'sh', '-c', 'id -u; cat /proc/1/comm']);
      expect(r.stderr).to.equal('');
      expect(r.stdout).to.equal(`${uid}\ntsrun-init\n`);
      expect(fs.readlinkSync(`/proc/${listed.pid}/ns/user`)).to.not.equal(
        fs.readlinkSync('/proc/self/ns/user'),
      );
      expect(asUser(['instance', 'stop', 'mine']).status).to.equal(0);
      expect(list(asUser)).to.deep.equal([]);
    });

    it('serves a page from a web server instance of the user, and frees the port', async () => {
      const port = await freePort();
      const start = asUser(['instance', 'start', web, 'userweb', String(port)]);
      expect(start.stderr).to.equal('');
      await waitFor(() => pgrep('httpd').length === 1, 5000);
      expect(await fetch(port)).to.equal('hello from the instance\n');
      const join = asUser([
        'exec',
        'instance://userweb',
        'wget',
        '-qO-',
        `http://127.0.0.1:${port}/`,
      ]);
      expect(join.stdout).to.equal('hello from the instance\n');
      expect(asUser(['instance', 'stop', 'userweb']).status).to.equal(0);
      expect(await listening(port), 'port still taken').to.equal(false);
      expect(pgrep('httpd')).to.deep.equal([]);
    });

    it('runs a SIF instance through squashfuse, and stops squashfuse with it, even after SIGKILL of its master', async function () {
      if (!fs.existsSync(SIF_FIXTURE)) return this.skip();
      const fuseMode = fs.statSync('/dev/fuse').mode & 0o777;
      fs.chmodSync('/dev/fuse', 0o666);
      try {
        const start = asUser(['instance', 'start', '--writable-tmpfs', SIF_FIXTURE, 'usif']);
        expect(start.stderr).to.equal('');
        expect(pgrep('squashfuse')).to.have.length(1);
        const r = asUser([
          'exec',
          'instance://usif',
          'sh',
          '-c',
          'touch /new && busybox | head -1',
        ]);
        expect(r.stdout).to.match(/^BusyBox v1\./);
        expect(asUser(['instance', 'stop', 'usif']).status).to.equal(0);
        expect(pgrep('squashfuse')).to.deep.equal([]);
        expect(asUser(['instance', 'start', SIF_FIXTURE, 'usif']).status).to.equal(0);
        const [listed] = list(asUser);
        const master = parentOf(listed.pid);
        process.kill(master, 'SIGKILL');
        await waitFor(
          () => pgrep('squashfuse').length === 0 && !fs.existsSync(`/proc/${listed.pid}`),
          5000,
        );
        expect(list(asUser)).to.deep.equal([]);
      } finally {
        fs.chmodSync('/dev/fuse', fuseMode);
      }
    });

    it("lets root join a user's --fakeroot instance as the root inside it", () => {
      const start = asUser(['instance', 'start', '--fakeroot', BUSYBOX, 'fake']);
      expect(start.stderr).to.equal('');
      expect(start.status).to.equal(0);
      const probe =
        'id -u; id -G; grep CapEff /proc/self/status; touch /root/.tsrun-probe && rm /root/.tsrun-probe && echo wrote';
      const own = asUser(['exec', 'instance://fake', 'sh', '-c', probe]);
      expect(own.stderr).to.equal('');
      const r = tsrun(['exec', `instance://${USER}/fake`, 'sh', '-c', probe]);
      expect(r.stderr).to.equal('');
      expect(r.status).to.equal(0);
      expect(r.stdout, 'as the owner would').to.equal(own.stdout);
      expect(r.stdout).to.match(/^0\n0\nCapEff:\s+0*[1-9a-f][0-9a-f]*\nwrote\n$/);
      expect(tsrun(['instance', 'stop', '--user', USER, 'fake']).status).to.equal(0);
      expect(list(asUser)).to.deep.equal([]);
    });

    it("keeps users apart: a user neither lists, joins nor stops another's; root can", () => {
      expect(tsrun(['instance', 'start', BUSYBOX, 'roots']).status).to.equal(0);
      expect(asUser(['instance', 'start', BUSYBOX, 'users']).status).to.equal(0);
      expect(list(asUser).map((i) => i.instance)).to.deep.equal(['users']);
      expect(list().map((i) => i.instance)).to.deep.equal(['roots']);
      const other = asUser(['instance', 'list', '--user', 'root']);
      expect(other.stderr).to.equal("tsrun: --user: only root may name another user's instances\n");
      const join = asUser(['exec', 'instance://roots', 'true']);
      expect(join.stderr).to.equal("tsrun: no instance named 'roots' is running\n");
      expect(asUser(['instance', 'stop', 'roots']).status).to.equal(255);
      const byRoot = tsrun(['instance', 'list', '--json', '--user', USER]);
      expect(JSON.parse(byRoot.stdout).instances.map((i: Listed) => i.instance)).to.deep.equal([
        'users',
      ]);
      const rootJoins = tsrun(['exec', `instance://${USER}/users`, 'id']);
      expect(rootJoins.stderr).to.equal('');
      const own = asUser(['exec', 'instance://users', 'id']);
      expect(own.stdout).to.match(
        new RegExp(`^uid=\\d+\\(${USER}\\) gid=\\d+\\(${USER}\\) groups=`),
      );
      expect(rootJoins.stdout, 'root joins as the owner, with its groups').to.equal(own.stdout);
      const userNames = asUser(['exec', 'instance://root/roots', 'true']);
      expect(userNames.stderr).to.equal(
        "tsrun: instance://root/roots: only root may name another user's instances\n",
      );
      expect(tsrun(['instance', 'stop', '--user', USER, 'users']).status).to.equal(0);
      expect(list(asUser)).to.deep.equal([]);
      expect(list().map((i) => i.instance)).to.deep.equal(['roots']);
    });
  });
});
