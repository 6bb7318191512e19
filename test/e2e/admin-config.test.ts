// tsrun.conf as an admin writes it: loop device sharing and limits, the session size, which
// image kinds may run, and a broken or unsafe file. Each test names its own file with TSRUN_CONF
// (root only).
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  BUSYBOX,
  busyboxImageFiles,
  expectNothingLeftBehind,
  holdLoop0,
  requireImage,
  Result,
  tsrun,
  tsrunAsync,
  waitFor,
} from '../helpers/run';

function loopsOf(file: string): string[] {
  const out = execFileSync('losetup', ['-j', file], { encoding: 'utf8' }).trim();
  return out === '' ? [] : out.split('\n');
}

/** The device mounted on / in the container, from the first line of its `mount`. */
function rootDevice(mountOutput: string): string {
  const match = /^(\/dev\/loop\d+) on \/ /.exec(mountOutput);
  expect(match, mountOutput).to.not.equal(null);
  return match![1];
}

describe('admin config (tsrun.conf)', function () {
  let dir: string;
  let squashfs: string;
  let ext3: string;
  let confFile: string;

  /** The environment of a run under a tsrun.conf with `lines`. */
  function withConf(lines: string[]): NodeJS.ProcessEnv {
    fs.writeFileSync(confFile, lines.join('\n') + '\n', { mode: 0o644 });
    fs.chmodSync(confFile, 0o644);
    return { ...process.env, TSRUN_CONF: confFile };
  }

  function run(lines: string[], args: string[]): Result {
    return tsrun(args, { env: withConf(lines) });
  }

  this.beforeAll(function () {
    requireImage(this, BUSYBOX, 'run scripts/setup.sh');
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-conf-'));
    confFile = path.join(dir, 'tsrun.conf');
    ({ squashfs, ext3 } = busyboxImageFiles(dir));
  });
  this.afterAll(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });
  expectNothingLeftBehind();
  afterEach(async () => {
    await waitFor(() => loopsOf(squashfs).length === 0, 2000).catch(() => undefined);
    expect(loopsOf(squashfs), 'loop devices of the image').to.deep.equal([]);
  });

  /** Runs one container that holds the image while a second one runs; their root devices. */
  async function twoContainers(lines: string[]): Promise<[string, string, number]> {
    const env = withConf(lines);
    const first = tsrunAsync(
      ['exec', squashfs, 'sh', '-c', 'mount | head -1; exec sleep 30'],
      undefined,
      env,
    );
    try {
      await waitFor(() => first.stdout().includes('\n'), 10000);
      const second = tsrun(['exec', squashfs, 'sh', '-c', 'mount | head -1'], { env });
      expect(second.stderr).to.equal('');
      const devicesWhileBoth = loopsOf(squashfs).length;
      return [rootDevice(first.stdout()), rootDevice(second.stdout), devicesWhileBoth];
    } finally {
      process.kill(first.pid, 'SIGTERM');
      await first.done;
    }
  }

  it('shares one loop device between containers of one image with `shared loop devices`', async () => {
    const [a, b, devices] = await twoContainers(['shared loop devices = yes']);
    expect(b).to.equal(a);
    expect(devices, 'devices of the image after the second run, the first still running').to.equal(
      1,
    );
  });

  it('gives each container its own loop device by default', async () => {
    const [a, b] = await twoContainers(['shared loop devices = no']);
    expect(b).to.not.equal(a);
  });

  it('fails with one line when every device below `max loop devices` is taken', () => {
    const release = holdLoop0(ext3);
    try {
      const r = run(['max loop devices = 1'], ['exec', squashfs, 'true']);
      expect(r.status).to.equal(255);
      expect(r.stderr.trim().split('\n')).to.have.length(1);
      expect(r.stderr).to.contain('no free loop device numbered below 1 (max loop devices = 1)');
      const ok = run(['max loop devices = 256'], ['exec', squashfs, 'true']);
      expect(ok.stderr).to.equal('');
      expect(ok.status).to.equal(0);
    } finally {
      release();
    }
  });

  it('sizes the --writable-tmpfs layer with `sessiondir max size`', () => {
    const write = (mib: number) => [
      'exec',
      '--writable-tmpfs',
      squashfs,
      'sh',
      '-c',
      `dd if=/dev/zero of=/big bs=1M count=${mib} 2>&1 >/dev/null | grep -o 'No space left' ; true`,
    ];
    expect(run(['sessiondir max size = 4'], write(8)).stdout).to.equal('No space left\n');
    const big = run(['sessiondir max size = 40'], write(24));
    expect(big.stderr).to.equal('');
    expect(big.stdout, 'more than the default 16 MiB fits').to.equal('');
  });

  it('refuses the image kinds the admin does not allow, naming the directive', () => {
    const cases: [string, string, RegExp][] = [
      [
        'allow container squashfs = no',
        squashfs,
        /squashfs images are not allowed \('allow container squashfs = no'/,
      ],
      [
        'allow container extfs = no',
        ext3,
        /ext3 images are not allowed \('allow container extfs = no'/,
      ],
      [
        'allow container dir = no',
        BUSYBOX,
        /sandbox directories are not allowed \('allow container dir = no'/,
      ],
    ];
    for (const [line, image, message] of cases) {
      const r = run([line], ['exec', image, 'true']);
      expect(r.status, line).to.equal(255);
      expect(r.stderr).to.match(message);
      expect(r.stderr.trim().split('\n')).to.have.length(1);
      const other = image === BUSYBOX ? squashfs : BUSYBOX;
      expect(run([line], ['exec', other, 'true']).status, `${line}: other kinds run`).to.equal(0);
    }
  });

  it('refuses to run with a malformed line, naming its number', () => {
    const r = run(['# fine', 'shared loop devices = yes', 'mount proc'], ['exec', BUSYBOX, 'true']);
    expect(r.status).to.equal(255);
    expect(r.stderr).to.contain(`tsrun.conf '${confFile}' line 3: expected 'directive = value'`);
    expect(r.stderr.trim().split('\n')).to.have.length(1);
  });

  it('refuses a file that others can write or that root does not own', () => {
    const env = withConf(['shared loop devices = yes']);
    fs.chmodSync(confFile, 0o646);
    const writable = tsrun(['exec', BUSYBOX, 'true'], { env });
    expect(writable.status).to.equal(255);
    expect(writable.stderr).to.contain('must be writable by root only (its mode is 0646)');
    fs.chmodSync(confFile, 0o644);
    fs.chownSync(confFile, 65534, 0);
    const owned = tsrun(['exec', BUSYBOX, 'true'], { env });
    expect(owned.status).to.equal(255);
    expect(owned.stderr).to.contain('must be owned by root, not uid 65534');
    fs.chownSync(confFile, 0, 0);
  });
});
