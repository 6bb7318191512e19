// --apply-cgroups on the real kernel: limits hold, values land in the container's cgroup, bad
// files are refused in one line, and no tsrun cgroup is left after any run.
import { expect } from 'chai';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  BUSYBOX,
  DEBIAN,
  expectNothingLeftBehind,
  leftCgroups,
  parentOf,
  requireImage,
  tsrun,
  tsrunAsync,
} from '../helpers/run';

const CGROUP_ROOT = '/sys/fs/cgroup';
const MiB = 1024 * 1024;

/** Host paths of the container's cgroup per controller, from its /proc/self/cgroup lines. */
function cgroupDirs(procSelfCgroup: string): Record<string, string> {
  const dirs: Record<string, string> = {};
  for (const line of procSelfCgroup.split('\n')) {
    const [, controllers, where] = line.split(':');
    if (where === undefined || !where.startsWith('/tsrun/')) continue;
    if (controllers === '') dirs.v2 = `${CGROUP_ROOT}${where}`;
    for (const c of controllers.split(',')) if (c !== '') dirs[c] = `${CGROUP_ROOT}/${c}${where}`;
  }
  return dirs;
}

function commandLine(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return '';
  }
}

/**
 * Stops the stage 2 process of the master `master` once it is in a tsrun cgroup; returns its pid.
 * Only that run's: other runs (another suite on the same machine) are left alone.
 */
function stopStage2InCgroup(master: number): number | undefined {
  for (const dir of leftCgroups()) {
    let procs: string[] = [];
    try {
      procs = fs.readFileSync(`${dir}/cgroup.procs`, 'utf8').split('\n').filter(Boolean);
    } catch {
      continue; // Removed meanwhile.
    }
    const pid = procs
      .map(Number)
      .find((p) => parentOf(p) === master && commandLine(p).startsWith('tsrun: stage2'));
    if (pid === undefined) continue;
    process.kill(pid, 'SIGSTOP');
    return pid;
  }
  return undefined;
}

function oneLine(stderr: string): string {
  const lines = stderr.split('\n').filter((l) => l !== '');
  expect(lines, `stderr: ${stderr}`).to.have.length(1);
  return lines[0];
}

function processState(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '')[0];
  } catch {
    return 'gone';
  }
}

describe('tsrun --apply-cgroups', function () {
  this.timeout(30000);
  let scratch: string;
  const file = (name: string, resources: unknown) => {
    const f = path.join(scratch, name);
    fs.writeFileSync(f, typeof resources === 'string' ? resources : JSON.stringify(resources));
    return f;
  };

  before(function () {
    if (process.getuid!() !== 0) {
      console.log('      skipped: cgroups need root');
      this.skip();
    }
    requireImage(this, BUSYBOX, 'run scripts/setup.sh');
    scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-cgroups-'));
  });
  after(() => {
    if (scratch) fs.rmSync(scratch, { recursive: true, force: true });
  });
  expectNothingLeftBehind();
  afterEach(() => expect(leftCgroups(), 'tsrun cgroups after the run').to.deep.equal([]));

  const dd = ['dd', 'if=/dev/zero', 'of=/dev/null', 'bs=100M', 'count=1'];

  it('OOM-kills a payload that fills 100 MiB under a 32 MiB memory limit (exit 137)', () => {
    const limit = file('mem.json', { memory: { limit: 32 * MiB } });
    const r = tsrun(['exec', '--apply-cgroups', limit, BUSYBOX, ...dd]);
    expect(r.status, r.stderr).to.equal(137);
  });

  it('lets the same payload finish without a limit', () => {
    const r = tsrun(['exec', BUSYBOX, ...dd]);
    expect(r.status, r.stderr).to.equal(0);
    expect(r.stderr).to.match(/1\+0 records out/);
  });

  it('stops a fork loop at the pids limit of 10 and kills the children left behind', () => {
    const limit = file('pids.json', { pids: { limit: 10 } });
    const loop = 'i=0; while [ $i -lt 30 ]; do sleep 100 & i=$((i+1)); echo $!; done';
    const r = tsrun(['exec', '--apply-cgroups', limit, BUSYBOX, 'sh', '-c', loop]);
    const started = r.stdout.split('\n').filter(Boolean).map(Number);
    expect(r.stderr).to.match(/can't fork: Resource temporarily unavailable/);
    expect(r.status).to.equal(2);
    // The shell is one of the 10.
    expect(started).to.have.length(9);
    for (const pid of started) expect(processState(pid), `sleep ${pid}`).to.be.oneOf(['Z', 'gone']);
  });

  it('writes cpu shares, quota, period and the limits into the host cgroup while it runs', async () => {
    const limits = file('cpu.json', {
      cpu: { shares: 512, quota: 20000, period: 100000 },
      memory: { limit: 64 * MiB },
      pids: { limit: 50 },
    });
    const seen: Record<string, string> = {};
    const run = tsrunAsync(
      ['exec', '--apply-cgroups', limits, BUSYBOX, 'sh', '-c', 'cat /proc/self/cgroup; sleep 30'],
      (out, pid) => {
        const dirs = cgroupDirs(out);
        if (Object.keys(dirs).length === 0 || seen.done !== undefined) return;
        const read = (dir: string | undefined, name: string) =>
          dir === undefined ? '' : fs.readFileSync(`${dir}/${name}`, 'utf8').trim();
        if (dirs.v2 !== undefined) {
          seen.cpu = `${read(dirs.v2, 'cpu.weight')} ${read(dirs.v2, 'cpu.max')}`;
          seen.memory = read(dirs.v2, 'memory.max');
          seen.pids = read(dirs.v2, 'pids.max');
        } else {
          const cpu = ['cpu.shares', 'cpu.cfs_quota_us', 'cpu.cfs_period_us'];
          seen.cpu = cpu.map((f) => read(dirs.cpu, f)).join(' ');
          seen.memory = read(dirs.memory, 'memory.limit_in_bytes');
          seen.pids = read(dirs.pids, 'pids.max');
          seen.dirs = Object.values(dirs).join(' ');
        }
        seen.done = '1';
        process.kill(pid, 'SIGTERM');
      },
    );
    const r = await run.done;
    expect(r.status, r.stderr).to.equal(143);
    const v2 = seen.dirs === undefined;
    expect(seen.cpu).to.equal(v2 ? '20 20000 100000' : '512 20000 100000');
    expect(seen.memory).to.equal(String(64 * MiB));
    expect(seen.pids).to.equal('50');
    if (!v2) expect(seen.dirs).to.match(/^\/sys\/fs\/cgroup\/\w+\/tsrun\/[0-9a-f]{16}( |$)/);
  });

  it('runs the payload on the CPUs of cpu.cpus', function () {
    const cpus = fs.readFileSync('/sys/devices/system/cpu/online', 'utf8').trim();
    const last = cpus.split(/[-,]/).pop()!;
    const limit = file('cpuset.json', { cpu: { cpus: last } });
    const r = tsrun([
      'exec',
      '--apply-cgroups',
      limit,
      BUSYBOX,
      'grep',
      'Cpus_allowed_list',
      '/proc/self/status',
    ]);
    expect(r.stdout, r.stderr).to.equal(`Cpus_allowed_list:\t${last}\n`);
  });

  it('puts a shell in the cgroup too', () => {
    const limit = file('pids.json', { pids: { limit: 10 } });
    const r = tsrun(['shell', '--apply-cgroups', limit, BUSYBOX], {
      input: 'grep pids /proc/self/cgroup\n',
    });
    expect(r.stdout, r.stderr).to.match(/^\d+:pids:\/tsrun\/[0-9a-f]{16}$/m);
    expect(r.status).to.equal(0);
  });

  const refusals: [string, string, RegExp][] = [
    ['bad JSON', '{"memory": ', /bad-json\.json': is not valid JSON: /],
    [
      'an unknown key',
      '{"memory": {"limt": 5}}',
      /unknown-key\.json': memory\.limt is not a known key$/,
    ],
    [
      'a negative value',
      '{"pids": {"limit": -1}}',
      /negative-value\.json': pids\.limit must be an integer, at least 1 \(got -1\)$/,
    ],
    [
      'a non-integer',
      '{"memory": {"limit": 1.5}}',
      /non-integer\.json': memory\.limit must be an integer/,
    ],
    [
      'a CPU the host lacks',
      '{"cpu": {"cpus": "4095"}}',
      /cpu\.cpus '4095' names CPUs that are not online/,
    ],
  ];
  for (const [what, text, message] of refusals) {
    it(`refuses a file with ${what} in one line, exit 255`, () => {
      const name = `${what.replace(/^an? /, '').replace(/ /g, '-').toLowerCase()}.json`;
      const r = tsrun(['exec', '--apply-cgroups', file(name, text), BUSYBOX, 'true']);
      expect(r.status).to.equal(255);
      expect(oneLine(r.stderr))
        .to.match(/^tsrun: stage 1: --apply-cgroups '\//)
        .and.match(message);
    });
  }

  it('names a missing file', () => {
    const r = tsrun(['exec', '--apply-cgroups', '/nonexistent/r.json', BUSYBOX, 'true']);
    expect(r.status).to.equal(255);
    expect(oneLine(r.stderr)).to.match(/--apply-cgroups '\/nonexistent\/r\.json': does not exist$/);
  });

  it('removes the cgroup when stage 2 fails after it was applied', () => {
    const limit = file('pids.json', { pids: { limit: 10 } });
    const r = tsrun(['exec', '--pwd', '/nonexistent', '--apply-cgroups', limit, BUSYBOX, 'true']);
    expect(r.status).to.equal(255);
    expect(oneLine(r.stderr)).to.match(/--pwd '\/nonexistent'/);
  });

  it('removes the cgroup when SIGTERM ends the run before the payload starts', async () => {
    const limit = file('pids.json', { pids: { limit: 10 } });
    // Stop stage 2 once the master has put it in its cgroup, so that set-up cannot finish; a run
    // whose payload started before the poll saw stage 2 is tried again.
    for (let attempt = 1; ; attempt++) {
      const run = tsrunAsync(['exec', '--apply-cgroups', limit, BUSYBOX, 'echo', 'started']);
      let finished = false;
      void run.done.then(() => (finished = true));
      let stopped: number | undefined;
      while (stopped === undefined && !finished) {
        stopped = stopStage2InCgroup(run.pid);
        await new Promise((resolve) => setImmediate(resolve));
      }
      if (stopped !== undefined) process.kill(run.pid, 'SIGTERM');
      const r = await run.done;
      expect(leftCgroups(), 'tsrun cgroups after the run').to.deep.equal([]);
      if (stopped === undefined && attempt < 5) continue;
      expect(stopped, 'stage 2 seen in its cgroup').to.be.a('number');
      expect(r.status).to.equal(143);
      expect(r.stdout).to.equal('');
      expect(processState(stopped!)).to.be.oneOf(['Z', 'gone']);
      return;
    }
  });

  describe('on the Debian rootfs', function () {
    before(function () {
      requireImage(this, DEBIAN, 'run scripts/make-debian-rootfs.sh');
    });

    const perl = ['perl', '-e', '$x = "a" x (100 * 1024 * 1024); print length($x), "\\n"'];

    it('OOM-kills perl building a 100 MiB string under a 32 MiB limit, not without it', () => {
      const limit = file('mem.json', { memory: { limit: 32 * MiB } });
      const limited = tsrun(['exec', '--apply-cgroups', limit, DEBIAN, ...perl]);
      expect(limited.status, limited.stderr).to.equal(137);
      const r = tsrun(['exec', DEBIAN, ...perl]);
      expect(r.stdout, r.stderr).to.equal(`${100 * MiB}\n`);
      expect(r.status).to.equal(0);
    });
  });
});
