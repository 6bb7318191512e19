// tsrun run as a user runs it, as root, on the project's busybox image and a Debian rootfs.
import { expect } from 'chai';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  BUSYBOX,
  DEBIAN,
  expectNothingLeftBehind,
  requireImage,
  tsrun,
  tsrunAsync,
  tsrunProcesses,
  waitFor,
} from '../helpers/run';

describe('tsrun exec on the Debian rootfs', function () {
  before(function () {
    requireImage(this, DEBIAN, 'run scripts/make-debian-rootfs.sh');
  });

  it("prints Debian's /etc/os-release", () => {
    const r = tsrun(['exec', DEBIAN, 'cat', '/etc/os-release']);
    expect(r.stderr).to.equal('');
    expect(r.stdout).to.match(/^PRETTY_NAME="Debian GNU\/Linux 12 \(bookworm\)"/m);
    expect(r.status).to.equal(0);
  });

  it('sees the calling user in /etc/passwd and runs as that user', () => {
    const r = tsrun(['exec', DEBIAN, 'sh', '-c', 'id -u; grep "^root:" /etc/passwd']);
    expect(r.stdout).to.equal('0\nroot:x:0:0:root:/root:/bin/bash\n');
  });
});

describe('tsrun exec on the busybox image', function () {
  let scratch: string;

  this.beforeAll(function () {
    requireImage(this, BUSYBOX, 'run scripts/setup.sh');
    scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-e2e-'));
  });
  this.afterAll(() => {
    if (scratch) fs.rmSync(scratch, { recursive: true, force: true });
  });
  expectNothingLeftBehind();

  it('exits with the payload exit code', () => {
    expect(tsrun(['exec', BUSYBOX, 'sh', '-c', 'exit 7']).status).to.equal(7);
  });

  it('exits 143 when the payload is killed by SIGTERM', () => {
    expect(tsrun(['exec', BUSYBOX, 'sh', '-c', 'kill -TERM $$']).status).to.equal(143);
  });

  it('passes stdin to the payload', () => {
    expect(tsrun(['exec', BUSYBOX, 'cat'], { input: 'hi\n' }).stdout).to.equal('hi\n');
  });

  it('ends with 143 soon after tsrun gets SIGTERM', async () => {
    let sent = 0;
    const run = tsrunAsync(
      ['exec', BUSYBOX, 'sh', '-c', 'echo ready; exec sleep 100'],
      (out, pid) => {
        if (sent === 0 && out.includes('ready')) {
          sent = Date.now();
          process.kill(pid, 'SIGTERM');
        }
      },
    );
    const r = await run.done;
    expect(r.status).to.equal(143);
    expect(Date.now() - sent).to.be.below(1000);
  });

  it('exits 143 and leaves no stage running when SIGTERM arrives during set-up', async () => {
    const run = tsrunAsync(['exec', BUSYBOX, 'sh', '-c', 'echo started']);
    await waitFor(() => tsrunProcesses().some((p) => /stage1|stage2|rpc/.test(p)), 5000);
    process.kill(run.pid, 'SIGTERM');
    const r = await run.done;
    expect(r.status).to.equal(143);
    expect(r.stdout).to.equal('');
  });

  it('ends with 143 after SIGTERM when the payload is pid 1 without a handler (--pid --no-init)', async () => {
    let sent = 0;
    const args = ['exec', '--pid', '--no-init', BUSYBOX, 'sh', '-c', 'echo ready; exec sleep 100'];
    const run = tsrunAsync(args, (out, pid) => {
      if (sent === 0 && out.includes('ready')) {
        sent = Date.now();
        setTimeout(() => process.kill(pid, 'SIGTERM'), 100);
      }
    });
    const r = await run.done;
    expect(r.status).to.equal(143);
    expect(Date.now() - sent).to.be.below(2000);
  });

  it('lets a pid-1 payload with a SIGTERM trap handle it (--pid --no-init)', async () => {
    const script = 'trap "echo trapped; exit 5" TERM; echo ready; while :; do sleep 0.05; done';
    let sent = false;
    const args = ['exec', '--pid', '--no-init', BUSYBOX, 'sh', '-c', script];
    const run = tsrunAsync(args, (out, pid) => {
      if (!sent && out.includes('ready')) {
        sent = true;
        process.kill(pid, 'SIGTERM');
      }
    });
    const r = await run.done;
    expect(r.stdout).to.equal('ready\ntrapped\n');
    expect(r.status).to.equal(5);
  });

  it('delivers SIGUSR1 sent to tsrun to a trap in the payload', async () => {
    let readySeen = false;
    const run = tsrunAsync(
      [
        'exec',
        BUSYBOX,
        'sh',
        '-c',
        'trap "echo got-usr1; exit 3" USR1; echo ready; while :; do sleep 0.05; done',
      ],
      (out, pid) => {
        if (!readySeen && out.includes('ready')) {
          readySeen = true;
          process.kill(pid, 'SIGUSR1');
        }
      },
    );
    const r = await run.done;
    expect(r.stdout).to.equal('ready\ngot-usr1\n');
    expect(r.status).to.equal(3);
  });

  it('lists host files through -B src:dst', () => {
    fs.writeFileSync(path.join(scratch, 'hello.txt'), 'x');
    const r = tsrun(['exec', '-B', `${scratch}:/mnt`, BUSYBOX, 'ls', '/mnt']);
    expect(r.stdout).to.equal('hello.txt\n');
  });

  it('mounts a read-write bind nosuid and nodev', () => {
    const r = tsrun([
      'exec',
      '-B',
      `${scratch}:/mnt`,
      BUSYBOX,
      'grep',
      ' /mnt ',
      '/proc/self/mountinfo',
    ]);
    expect(r.stdout).to.match(/ \/mnt rw,nosuid,nodev[, ]/);
  });

  it('makes a :ro bind read-only and creates a missing destination in a layer', () => {
    const r = tsrun([
      'exec',
      '-B',
      `${scratch}:/new/dir:ro`,
      BUSYBOX,
      'sh',
      '-c',
      'touch /new/dir/f 2>/dev/null && echo writable || echo read-only',
    ]);
    expect(r.stdout).to.equal('read-only\n');
    expect(fs.existsSync(path.join(BUSYBOX, 'new'))).to.equal(false);
  });

  it('shows the minimal /dev with --contain', () => {
    const r = tsrun(['exec', '--contain', BUSYBOX, 'ls', '/dev']);
    expect(r.stdout.split('\n').filter((l) => l !== '')).to.have.members([
      'fd',
      'full',
      'null',
      'ptmx',
      'pts',
      'random',
      'shm',
      'stderr',
      'stdin',
      'stdout',
      'tty',
      'urandom',
      'zero',
    ]);
  });

  it('runs the payload as pid 1 with --pid --no-init', () => {
    const r = tsrun(['exec', '--pid', '--no-init', BUSYBOX, 'sh', '-c', 'echo $$']);
    expect(r.stdout).to.equal('1\n');
  });

  it('runs tsrun-init as pid 1 with --pid: it reaps orphans and passes the exit code', () => {
    // The orphan's parent exits at once; tsrun-init must reap it, or ps shows a zombie (Z).
    const script = 'sh -c "sleep 0.2 & exit 0"; sleep 0.6; ps -o pid,stat,comm; exit 3';
    const r = tsrun(['exec', '--pid', BUSYBOX, 'sh', '-c', script]);
    expect(r.status).to.equal(3);
    const lines = r.stdout.trim().split('\n').slice(1);
    expect(lines[0]).to.match(/^\s*1 \S+\s+tsrun-init$/);
    expect(
      lines.filter((l) => / Z/.test(l)),
      r.stdout,
    ).to.deep.equal([]);
  });

  it('forwards SIGTERM through tsrun-init to a payload without a handler (143)', async () => {
    let sent = false;
    const args = ['exec', '--pid', BUSYBOX, 'sh', '-c', 'echo ready; exec sleep 100'];
    const run = tsrunAsync(args, (out, pid) => {
      if (!sent && out.includes('ready')) {
        sent = true;
        setTimeout(() => process.kill(pid, 'SIGTERM'), 100);
      }
    });
    const r = await run.done;
    expect(r.status).to.equal(143);
  });

  it('sets the hostname with --hostname', () => {
    expect(tsrun(['exec', '--hostname', 'box', BUSYBOX, 'hostname']).stdout).to.equal('box\n');
  });

  it("keeps the host's working directory, and uses --pwd when given", () => {
    expect(tsrun(['exec', BUSYBOX, 'pwd'], { cwd: scratch }).stdout).to.equal(`${scratch}\n`);
    expect(tsrun(['exec', '--pwd', '/etc', BUSYBOX, 'pwd']).stdout).to.equal('/etc\n');
  });

  it("passes the host environment with the container's PATH", () => {
    const env = { ...process.env, TSRUN_TEST_VALUE: 'a b\nc=d' };
    const r = tsrun(['exec', BUSYBOX, 'sh', '-c', 'printf "%s|%s" "$TSRUN_TEST_VALUE" "$PATH"'], {
      env,
    });
    expect(r.stdout).to.equal(
      'a b\nc=d|/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    );
  });

  it('keeps the image read-only unless --writable', () => {
    const r = tsrun(['exec', BUSYBOX, 'sh', '-c', 'touch /x 2>/dev/null && echo rw || echo ro']);
    expect(r.stdout).to.equal('ro\n');
  });

  it('writes into a sandbox directory with --writable', () => {
    const image = path.join(scratch, 'writable');
    fs.cpSync(BUSYBOX, image, { recursive: true, verbatimSymlinks: true });
    const r = tsrun(['exec', '--writable', image, 'sh', '-c', 'echo data > /written']);
    expect(r.status).to.equal(0);
    expect(fs.readFileSync(path.join(image, 'written'), 'utf8')).to.equal('data\n');
  });

  it('shows the master and the payload while running, and no other stage', async () => {
    let seen: string[] = [];
    const run = tsrunAsync(['exec', BUSYBOX, 'sh', '-c', 'echo ready; exec sleep 3'], (out) => {
      if (out.includes('ready') && seen.length === 0) seen = tsrunProcesses();
    });
    const r = await run.done;
    expect(r.status).to.equal(0);
    expect(seen).to.have.length(1);
    expect(seen[0]).to.match(/tsrun: master/);
  });
});

describe('tsrun run and shell on the busybox image', function () {
  this.beforeAll(function () {
    requireImage(this, BUSYBOX, 'run scripts/setup.sh');
  });

  it("runs the image's runscript with the arguments given", () => {
    const r = tsrun(['run', BUSYBOX, '-c', 'echo run-ok "$1"', 'x', 'arg1']);
    expect(r.stdout).to.equal('run-ok arg1\n');
    expect(r.status).to.equal(0);
  });

  it('runs a shell that reads its commands from stdin', () => {
    const r = tsrun(['shell', BUSYBOX], { input: 'echo in-shell; exit 4\n' });
    expect(r.stdout).to.equal('in-shell\n');
    expect(r.status).to.equal(4);
  });

  it("sources the image's /.singularity.d/env scripts before the command", () => {
    const r = tsrun(['exec', BUSYBOX, 'sh', '-c', 'echo "$LD_LIBRARY_PATH"']);
    expect(r.stdout).to.equal('/.singularity.d/libs\n');
  });

  it('prints records of every stage tagged with the stage with -d', () => {
    const r = tsrun(['-d', 'exec', BUSYBOX, 'true']);
    expect(r.status).to.equal(0);
    for (const stage of ['starter', 'stage1', 'master', 'rpc', 'stage2']) {
      expect(r.stderr, stage).to.match(new RegExp(`(DEBUG|VERBOSE): ${stage} [0-9a-f]{16}: `));
    }
  });
});

describe('tsrun CLI', () => {
  it('prints its version', () => {
    expect(tsrun(['version']).stdout).to.match(/^tsrun version \d+\.\d+\.\d+\n$/);
  });

  it('prints help for exec and exits 0', () => {
    const r = tsrun(['exec', '--help']);
    expect(r.status).to.equal(0);
    expect(r.stdout).to.match(/Usage: tsrun exec \[options\] IMAGE COMMAND/);
    expect(r.stdout).to.match(/--bind <spec>/);
  });

  it('refuses a missing command with 255 and one line', () => {
    const r = tsrun(['exec', '/tmp']);
    expect(r.status).to.equal(255);
    expect(r.stderr.trim().split('\n')).to.have.length(1);
  });
});
