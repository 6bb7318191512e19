// Bad input gets one clear line, a non-zero exit, and leaves nothing behind.
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BUSYBOX, expectNothingLeftBehind, requireImage, STARTER, tsrun } from '../helpers/run';

function starterWith(config: string | Buffer): { status: number | null; stderr: string } {
  const file = path.join(os.tmpdir(), `tsrun-bad-config-${process.pid}.json`);
  fs.writeFileSync(file, config);
  try {
    const r = spawnSync(STARTER, [file], { encoding: 'utf8', timeout: 30000 });
    return { status: r.status, stderr: r.stderr };
  } finally {
    fs.rmSync(file, { force: true });
  }
}

function oneLine(stderr: string): string {
  const lines = stderr.split('\n').filter((l) => l !== '');
  expect(lines, `stderr: ${stderr}`).to.have.length(1);
  return lines[0];
}

describe('bad input', function () {
  let scratch: string;

  this.beforeAll(function () {
    requireImage(this, BUSYBOX, 'run scripts/setup.sh');
    scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-bad-'));
  });
  this.afterAll(() => {
    if (scratch) fs.rmSync(scratch, { recursive: true, force: true });
  });
  expectNothingLeftBehind();

  it('names a missing image', () => {
    const r = tsrun(['exec', '/nonexistent/image', 'true']);
    expect(r.status).to.equal(255);
    expect(oneLine(r.stderr)).to.match(/image '\/nonexistent\/image' does not exist/);
  });

  it('refuses an image that is a plain file', () => {
    const file = path.join(scratch, 'not-an-image');
    fs.writeFileSync(file, 'hello');
    const r = tsrun(['exec', file, 'true']);
    expect(r.status).to.equal(255);
    expect(oneLine(r.stderr)).to.match(
      /not-an-image': not a SIF, squashfs or ext3 image \(found text/,
    );
  });

  it('names a bind source that does not exist', () => {
    const r = tsrun(['exec', '-B', '/nonexistent/src:/mnt', BUSYBOX, 'true']);
    expect(r.status).to.equal(255);
    expect(oneLine(r.stderr)).to.match(/bind source '\/nonexistent\/src' does not exist/);
  });

  it("refuses a bind destination with '..' that would leave the root", () => {
    const r = tsrun(['exec', '-B', `${scratch}:/mnt/../../etc`, BUSYBOX, 'true']);
    expect(r.status).to.equal(255);
    expect(oneLine(r.stderr)).to.match(/must not contain '\.\.'/);
  });

  it('keeps a bind through an image symlink to /etc inside the container root', () => {
    const image = path.join(scratch, 'img');
    fs.cpSync(BUSYBOX, image, { recursive: true, verbatimSymlinks: true });
    fs.symlinkSync('/etc', path.join(image, 'escape'));
    fs.writeFileSync(path.join(scratch, 'marker'), 'm');
    const r = tsrun([
      'exec',
      '-B',
      `${scratch}/marker:/escape/tsrun-marker`,
      image,
      'cat',
      '/etc/tsrun-marker',
    ]);
    expect(r.stdout).to.equal('m');
    expect(fs.existsSync('/etc/tsrun-marker')).to.equal(false);
  });

  it('refuses an empty bind spec, a bind onto / or /proc, and a relative --pwd', () => {
    const cases: [string[], RegExp][] = [
      [['-B', `${scratch}:/x,`], /empty bind spec/],
      [['-B', `${scratch}:/`], /bind destination '\/' is reserved/],
      [['-B', `${scratch}:/proc/sys`], /bind destination '\/proc\/sys' is reserved/],
      [['--pwd', 'etc'], /--pwd 'etc' must be an absolute path/],
    ];
    for (const [flags, message] of cases) {
      const r = tsrun(['exec', ...flags, BUSYBOX, 'true']);
      expect(r.status, flags.join(' ')).to.equal(255);
      expect(oneLine(r.stderr)).to.match(message);
    }
  });

  it('refuses an empty hostname and one longer than 64 bytes', () => {
    for (const [name, message] of [
      ['', /must not be empty/],
      ['h'.repeat(65), /longer than 64/],
    ]) {
      const r = tsrun(['exec', '--hostname', name as string, BUSYBOX, 'true']);
      expect(r.status).to.equal(255);
      expect(oneLine(r.stderr)).to.match(message as RegExp);
    }
  });

  it('names the mount that failed and runs none of the steps after it', () => {
    const r = tsrun(['exec', '-B', `${scratch}:/etc/os-release`, BUSYBOX, 'true']);
    expect(r.status).to.equal(255);
    expect(oneLine(r.stderr)).to.match(
      /mounting bind on '\/etc\/os-release': mount .* -> '\/etc\/os-release' .*: ENOTDIR$/,
    );
    expect(fs.readdirSync('/var/lib/tsrun/mnt/session')).to.deep.equal([]);
  });

  it('names a --pwd that does not exist in the container', () => {
    const r = tsrun(['exec', '--pwd', '/nonexistent', BUSYBOX, 'true']);
    expect(r.status).to.equal(255);
    expect(oneLine(r.stderr)).to.match(/--pwd '\/nonexistent': no such directory/);
  });

  it('exits 127 naming a command the image lacks, as its shell does', () => {
    const r = tsrun(['exec', BUSYBOX, 'no-such-cmd']);
    expect(r.status).to.equal(127);
    expect(oneLine(r.stderr)).to.match(/no-such-cmd/);
  });

  it('refuses a malformed engine config given to tsrun-starter', () => {
    const r = starterWith('{"engineName": "tsrun",');
    expect(r.status).to.equal(255);
    expect(oneLine(r.stderr)).to.match(/engine config is not valid JSON/);
  });

  it('refuses an oversized engine config given to tsrun-starter', () => {
    const r = starterWith(Buffer.alloc(2 << 20, 0x20));
    expect(r.status).to.equal(255);
    expect(oneLine(r.stderr)).to.match(/engine config too large/);
  });

  it('refuses an unknown engine name', () => {
    const r = starterWith(
      JSON.stringify({ engineName: 'nope', containerID: 'x', engineConfig: {} }),
    );
    expect(r.status).to.equal(255);
    expect(oneLine(r.stderr)).to.match(/unknown engine 'nope'/);
  });
});
