// `enable overlay = driver`: the container's root overlay through fuse-overlayfs instead of the
// kernel's overlayfs (what tsrun falls back to where a kernel refuses overlayfs in a user
// namespace). As root, in a user namespace, over squashfuse, and as an ordinary user; each run
// leaves no fuse-overlayfs process and no mount.
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  BUSYBOX,
  expectNothingLeftBehind,
  requireImage,
  ROOT,
  Result,
  SIF_FIXTURE,
  TSRUN,
  tsrun,
} from '../helpers/run';

const USER = 'tsrun-test';
const ROOT_OVERLAY = /^fuse-overlayfs on \/ type fuse\.fuse-overlayfs \(rw,/;

function noDaemonLeft(): void {
  expect(spawnSync('pgrep', ['-x', 'fuse-overlayfs']).status, 'fuse-overlayfs left').to.equal(1);
}

describe('enable overlay = driver (fuse-overlayfs)', function () {
  let dir: string;
  let env: NodeJS.ProcessEnv;
  let driverConf: string;

  this.beforeAll(function () {
    requireImage(this, BUSYBOX, 'run scripts/setup.sh');
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-fuse-overlay-'));
    fs.chmodSync(dir, 0o755);
    const shipped = fs.readFileSync(path.join(ROOT, 'etc', 'tsrun.conf'), 'utf8');
    driverConf = shipped.replace(/^enable overlay = .*$/m, 'enable overlay = driver');
    expect(driverConf, 'the shipped file sets enable overlay').to.not.equal(shipped);
    fs.writeFileSync(path.join(dir, 'tsrun.conf'), driverConf, { mode: 0o644 });
    env = { ...process.env, TSRUN_CONF: path.join(dir, 'tsrun.conf') };
  });
  this.afterAll(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });
  expectNothingLeftBehind();
  afterEach(noDaemonLeft);

  const run = (args: string[]): Result => tsrun(args, { env });

  it('writes to a tmpfs layer as root, and keeps the image as it was', () => {
    const script = 'mount | head -1; echo hi > /new; cat /new';
    const r = run(['exec', '--writable-tmpfs', BUSYBOX, 'sh', '-c', script]);
    expect(r.stderr).to.equal('');
    expect(r.stdout).to.match(ROOT_OVERLAY);
    expect(r.stdout).to.match(/\nhi\n$/);
    expect(fs.existsSync(path.join(BUSYBOX, 'new'))).to.equal(false);
  });

  it('keeps the writes of --overlay DIR in DIR/upper, in a user namespace with --fakeroot', () => {
    const overlay = path.join(dir, 'overlay');
    fs.mkdirSync(overlay);
    // Root has no /etc/subuid range: a single mapping, where 0 is the only id.
    const script = 'mount | head -1; id -u; echo kept > /kept; mkdir /d; ls -lnd /d';
    const r = run(['exec', '-u', '--fakeroot', '--overlay', overlay, BUSYBOX, 'sh', '-c', script]);
    expect(r.stderr).to.equal('');
    expect(r.stdout).to.match(ROOT_OVERLAY);
    expect(r.stdout).to.match(/\n0\nd\S+\s+2 0\s+0 /);
    expect(fs.readFileSync(path.join(overlay, 'upper', 'kept'), 'utf8')).to.equal('kept\n');
  });

  it('stacks over a SIF file served by squashfuse in a user namespace', function () {
    if (!fs.existsSync(SIF_FIXTURE)) return this.skip();
    const script = 'mount | head -1; touch /new && echo made; busybox | head -1';
    const r = run(['exec', '-u', '--writable-tmpfs', SIF_FIXTURE, 'sh', '-c', script]);
    expect(r.stderr).to.equal('');
    expect(r.stdout).to.match(ROOT_OVERLAY);
    expect(r.stdout).to.match(/\nmade\nBusyBox v1\.\S+ /);
    expect(spawnSync('pgrep', ['-x', 'squashfuse']).status, 'squashfuse left').to.equal(1);
  });

  it("runs as an ordinary user over a SIF file: the user's files, the image's root", function () {
    if (!fs.existsSync(SIF_FIXTURE)) return this.skip();
    const account = spawnSync('id', ['-u', USER], { encoding: 'utf8' });
    if (account.status !== 0) {
      console.log(`      skipped: no user ${USER} (scripts/test-prereqs.sh adds it)`);
      return this.skip();
    }
    const uid = account.stdout.trim();
    // Only root may name another tsrun.conf, so the installed one is swapped for this test.
    const installed = path.join(ROOT, 'etc', 'tsrun.conf');
    const shipped = fs.readFileSync(installed);
    const fuseMode = fs.statSync('/dev/fuse').mode & 0o777;
    try {
      fs.writeFileSync(installed, driverConf);
      fs.chmodSync('/dev/fuse', 0o666);
      const script = 'mount | head -1; touch /new && ls -n /new; busybox | head -1';
      const setpriv = ['--reuid', USER, '--regid', USER, '--init-groups'];
      const r = spawnSync(
        'setpriv',
        [...setpriv, TSRUN, 'exec', '--writable-tmpfs', SIF_FIXTURE, 'sh', '-c', script],
        { encoding: 'utf8', cwd: '/', env: { PATH: process.env.PATH, HOME: '/' } },
      );
      expect(r.stderr).to.equal('');
      expect(r.stdout).to.match(ROOT_OVERLAY);
      expect(r.stdout).to.match(
        new RegExp(`\\n-\\S+\\s+1 ${uid}\\s+${uid}\\s+0 .*/new\\nBusyBox v1\\.`),
      );
    } finally {
      fs.writeFileSync(installed, shipped);
      fs.chmodSync('/dev/fuse', fuseMode);
    }
  });

  it('ends fuse-overlayfs with the run when the payload is killed with SIGKILL', () => {
    const r = run(['exec', '-u', '--writable-tmpfs', BUSYBOX, 'sh', '-c', 'kill -KILL $$']);
    expect(r.status).to.equal(137);
  });
});
