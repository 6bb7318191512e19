import { expect } from 'chai';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  cgroupWrites,
  layoutOf,
  listWithin,
  parseCgroupMounts,
  placeControllers,
  sharesToWeight,
} from '../../../src/engines/tsrun/cgroups-plan';
import { CgroupFs, ContainerCgroup, prepareCgroups } from '../../../src/engines/tsrun/cgroups';
import { loadResourcesFile, parseResources } from '../../../src/engines/tsrun/cgroups-spec';
import { parseTsrunConfig, TsrunEngineConfig } from '../../../src/engines/tsrun/config';
import { buildEngineConfig } from '../../../src/cli/config';
import { tsrunConfig } from '../../helpers/configs';

/** This machine's layout: v1 controllers, and cgroup2 at unified with none enabled. */
const HYBRID = [
  '31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755',
  '32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu',
  '34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset',
  '35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory',
  '39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids',
  '41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw',
].join('\n');
const V2 = '30 23 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate';

/** A CgroupFs below a directory, recording writes and kills. */
class TreeFs implements CgroupFs {
  writes: string[] = [];
  kills: number[] = [];
  constructor(readonly root: string) {}
  at = (p: string) => path.join(this.root, p);
  mkdir = (dir: string) => fs.mkdirSync(this.at(dir));
  rmdir = (dir: string) => fs.rmSync(this.at(dir), { recursive: true });
  read = (file: string) => fs.readFileSync(this.at(file), 'utf8');
  exists = (file: string) => fs.existsSync(this.at(file));
  kill = (pid: number) => void this.kills.push(pid);
  write = (file: string, value: string) => {
    this.writes.push(`${file}=${value}`);
    fs.writeFileSync(this.at(file), value);
  };
  put(file: string, text: string): void {
    fs.mkdirSync(path.dirname(this.at(file)), { recursive: true });
    fs.writeFileSync(this.at(file), text);
  }
}

describe('cgroups: the --apply-cgroups file', () => {
  let dir: string;
  before(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-cg-'))));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  const load = (text: string) => {
    const file = path.join(dir, 'r.json');
    fs.writeFileSync(file, text);
    return () => loadResourcesFile(file);
  };

  it('reads memory, cpu and pids settings', () => {
    const text = JSON.stringify({
      memory: { limit: 1 << 25, reservation: 1 << 24, swap: 1 << 26, disableOOMKiller: false },
      cpu: { shares: 512, quota: 50000, period: 100000, cpus: '0', mems: '0' },
      pids: { limit: 10 },
    });
    expect(load(text)()).to.deep.equal(JSON.parse(text));
  });

  const refusals: [string, string, RegExp][] = [
    ['bad JSON', '{"memory": {', /r\.json': is not valid JSON: /],
    ['an unknown key', '{"memory": {"limt": 1}}', /r\.json': memory\.limt is not a known key$/],
    ['an unknown section', '{"linux": {}}', /r\.json': linux is not a known key$/],
    ['an OCI key tsrun lacks', '{"blockIO": {}}', /blockIO is not supported by tsrun$/],
    [
      'a negative value',
      '{"memory": {"limit": -5}}',
      /memory\.limit must be an integer, at least 1 \(got -5\)$/,
    ],
    [
      'a non-integer',
      '{"pids": {"limit": 2.5}}',
      /pids\.limit must be an integer, at least 1 \(got 2\.5\)$/,
    ],
    [
      'a string number',
      '{"cpu": {"shares": "512"}}',
      /cpu\.shares must be an integer, 2 to 262144 \(got "512"\)$/,
    ],
    [
      'shares out of range',
      '{"cpu": {"shares": 1}}',
      /cpu\.shares must be an integer, 2 to 262144/,
    ],
    ['a bad cpu list', '{"cpu": {"cpus": "0-"}}', /cpu\.cpus must be a list like "0-1,3"/],
    [
      'a non-boolean',
      '{"memory": {"disableOOMKiller": 1}}',
      /disableOOMKiller must be true or false/,
    ],
    ['swap without a limit', '{"memory": {"swap": 100}}', /memory\.swap needs memory\.limit/],
    [
      'swap below the limit',
      '{"memory": {"limit": 200, "swap": 100}}',
      /must not be below memory\.limit/,
    ],
    ['a file that sets nothing', '{"memory": {}}', /r\.json': sets no memory, cpu or pids limit$/],
    ['an array', '[]', /must hold a JSON object/],
    ['a section that is no object', '{"pids": 10}', /r\.json': pids must be an object$/],
  ];
  for (const [what, text, message] of refusals) {
    it(`refuses ${what} with one line naming the file`, () => {
      expect(load(text)).to.throw(message).with.property('code', 'EINVAL');
    });
  }

  it('refuses a missing file and a directory', () => {
    expect(() => loadResourcesFile('/nonexistent/r.json')).to.throw(
      "--apply-cgroups '/nonexistent/r.json': does not exist",
    );
    expect(() => loadResourcesFile(dir)).to.throw(/is not a regular file$/);
  });

  it('checks objects already parsed', () => {
    expect(parseResources({ pids: { limit: 3 } })).to.deep.equal({ pids: { limit: 3 } });
  });
});

describe('cgroups: the engine config', () => {
  it('carries --apply-cgroups as an absolute path', () => {
    const common = buildEngineConfig('exec', '/img', ['true'], { applyCgroups: 'r.json' });
    const cfg = common.engineConfig as TsrunEngineConfig;
    expect(cfg.applyCgroups).to.equal(path.resolve('r.json'));
    expect(parseTsrunConfig(cfg).applyCgroups).to.equal(path.resolve('r.json'));
  });

  it('refuses a relative --apply-cgroups path in an engine config', () => {
    expect(() => parseTsrunConfig(tsrunConfig({ applyCgroups: 'r.json' }))).to.throw(
      'engine config: applyCgroups must be an absolute path',
    );
  });
});

describe('cgroups: layout and writes', () => {
  const controllersOf = (list: string[]) => () => list;

  it('uses the v1 hierarchies of a hybrid host whose unified hierarchy has no controllers', () => {
    const layout = layoutOf(parseCgroupMounts(HYBRID), controllersOf([]));
    expect(layout.v1).to.deep.equal({
      cpu: '/sys/fs/cgroup/cpu',
      cpuset: '/sys/fs/cgroup/cpuset',
      memory: '/sys/fs/cgroup/memory',
      pids: '/sys/fs/cgroup/pids',
    });
    expect(layout.v2?.mountPoint).to.equal('/sys/fs/cgroup/unified');
    expect(placeControllers(['memory', 'pids'], layout)).to.deep.equal([
      { controller: 'memory', version: 1, mountPoint: '/sys/fs/cgroup/memory' },
      { controller: 'pids', version: 1, mountPoint: '/sys/fs/cgroup/pids' },
    ]);
  });

  it('finds co-mounted controllers and unescapes mount points', () => {
    const line = '32 31 0:29 / /sys/fs/cgroup/cpu\\040acct rw - cgroup cgroup rw,cpu,cpuacct';
    expect(layoutOf(parseCgroupMounts(line), controllersOf([])).v1).to.deep.equal({
      cpu: '/sys/fs/cgroup/cpu acct',
    });
  });

  it('uses cgroup v2 when /sys/fs/cgroup is cgroup2', () => {
    const layout = layoutOf(parseCgroupMounts(V2), controllersOf(['cpu', 'memory', 'pids']));
    expect(placeControllers(['cpu'], layout)).to.deep.equal([
      { controller: 'cpu', version: 2, mountPoint: '/sys/fs/cgroup' },
    ]);
  });

  it('refuses a controller the host offers nowhere', () => {
    const layout = layoutOf(parseCgroupMounts(V2), controllersOf(['memory']));
    expect(() => placeControllers(['pids'], layout)).to.throw(
      "the cgroup controller 'pids' is not available",
    );
  });

  const ALL = { memory: { limit: 300, swap: 500, reservation: 100 }, pids: { limit: 10 } };
  const CPU = { cpu: { shares: 1024, quota: 50000, period: 200000, cpus: '0-1' } };
  const at = (version: 1 | 2) =>
    (['memory', 'cpu', 'cpuset', 'pids'] as const).map((controller) => ({
      controller,
      version,
      mountPoint: '/m',
    }));
  const files = (res: object, version: 1 | 2) =>
    cgroupWrites(res, at(version)).map((w) => `${w.file}=${w.value}`);

  it('writes v1 files, the limit before memsw and the period before the quota', () => {
    expect(files({ ...ALL, ...CPU }, 1)).to.deep.equal([
      'memory.limit_in_bytes=300',
      'memory.memsw.limit_in_bytes=500',
      'memory.soft_limit_in_bytes=100',
      'cpu.shares=1024',
      'cpu.cfs_period_us=200000',
      'cpu.cfs_quota_us=50000',
      'cpuset.cpus=0-1',
      'pids.max=10',
    ]);
    expect(files({ memory: { disableOOMKiller: true } }, 1)).to.deep.equal([
      'memory.oom_control=1',
    ]);
  });

  it('converts to v2 files: swap without memory, shares to weight, quota and period to cpu.max', () => {
    expect(files({ ...ALL, ...CPU }, 2)).to.deep.equal([
      'memory.max=300',
      'memory.swap.max=200',
      'memory.low=100',
      'cpu.weight=39',
      'cpu.max=50000 200000',
      'cpuset.cpus=0-1',
      'pids.max=10',
    ]);
    expect(files({ cpu: { period: 50000 } }, 2)).to.deep.equal(['cpu.max=max 50000']);
    expect(files({ cpu: { quota: 20000 } }, 2)).to.deep.equal(['cpu.max=20000 100000']);
  });

  it('refuses disableOOMKiller on cgroup v2', () => {
    expect(() => files({ memory: { disableOOMKiller: true } }, 2)).to.throw(
      /not supported on cgroup v2/,
    );
  });

  it('maps shares 2..262144 onto weights 1..10000', () => {
    expect([2, 1024, 262144].map(sharesToWeight)).to.deep.equal([1, 39, 10000]);
  });

  it('tells whether a CPU list is within another', () => {
    expect(listWithin('0', '0-1')).to.equal(true);
    expect(listWithin('0-1', '0-1')).to.equal(true);
    expect(listWithin('1,0', '0-1')).to.equal(true);
    expect(listWithin('2', '0-1')).to.equal(false);
    expect(listWithin('1-0', '0-1')).to.equal(false);
  });
});

describe('cgroups: creating and removing on a directory tree', () => {
  let tree: TreeFs;

  beforeEach(() => {
    tree = new TreeFs(fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-cgtree-')));
  });
  afterEach(() => fs.rmSync(tree.root, { recursive: true, force: true }));

  function hybridHost(): void {
    tree.put('/proc/self/mountinfo', HYBRID);
    tree.put('/sys/fs/cgroup/cpuset/cpuset.cpus', '0-1\n');
    tree.put('/sys/fs/cgroup/cpuset/cpuset.mems', '0\n');
    tree.put('/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes', '');
    tree.put('/sys/fs/cgroup/unified/cgroup.controllers', '\n');
    for (const c of ['cpu', 'pids']) fs.mkdirSync(tree.at(`/sys/fs/cgroup/${c}`));
  }

  /** Files the kernel puts in a new v1 cpuset directory, empty. */
  function emptyCpusetFiles(dir: string): void {
    tree.put(`${dir}/cpuset.cpus`, '');
    tree.put(`${dir}/cpuset.mems`, '');
  }

  it('makes one directory per v1 hierarchy, writes the limits and moves the process', () => {
    hybridHost();
    const cgroup = new ContainerCgroup('c1', tree);
    const mkdir = tree.mkdir;
    tree.mkdir = (dir) => {
      mkdir(dir);
      if (dir.startsWith('/sys/fs/cgroup/cpuset/')) emptyCpusetFiles(dir);
    };
    cgroup.apply({ memory: { limit: 4096 }, cpu: { mems: '0' }, pids: { limit: 5 } }, 4242);
    expect(cgroup.dirs).to.deep.equal([
      '/sys/fs/cgroup/memory/tsrun/c1',
      '/sys/fs/cgroup/cpuset/tsrun/c1',
      '/sys/fs/cgroup/pids/tsrun/c1',
    ]);
    expect(tree.writes).to.deep.equal([
      '/sys/fs/cgroup/cpuset/tsrun/cpuset.cpus=0-1',
      '/sys/fs/cgroup/cpuset/tsrun/cpuset.mems=0',
      '/sys/fs/cgroup/cpuset/tsrun/c1/cpuset.cpus=0-1',
      '/sys/fs/cgroup/cpuset/tsrun/c1/cpuset.mems=0',
      '/sys/fs/cgroup/memory/tsrun/c1/memory.limit_in_bytes=4096',
      '/sys/fs/cgroup/cpuset/tsrun/c1/cpuset.mems=0',
      '/sys/fs/cgroup/pids/tsrun/c1/pids.max=5',
      '/sys/fs/cgroup/memory/tsrun/c1/cgroup.procs=4242',
      '/sys/fs/cgroup/cpuset/tsrun/c1/cgroup.procs=4242',
      '/sys/fs/cgroup/pids/tsrun/c1/cgroup.procs=4242',
    ]);
    expect(process.listenerCount('exit')).to.be.above(0);
  });

  it('kills what is left in the cgroup, removes its directories and keeps the parent', async () => {
    hybridHost();
    const exitListeners = process.listenerCount('exit');
    const cgroup = new ContainerCgroup('c2', tree);
    cgroup.apply({ pids: { limit: 5 } }, 77);
    expect(process.listenerCount('exit')).to.equal(exitListeners + 1);
    await cgroup.remove();
    expect(tree.kills).to.deep.equal([77]);
    expect(tree.exists('/sys/fs/cgroup/pids/tsrun/c2')).to.equal(false);
    expect(tree.exists('/sys/fs/cgroup/pids/tsrun')).to.equal(true);
    expect(cgroup.dirs).to.deep.equal([]);
    expect(process.listenerCount('exit')).to.equal(exitListeners);
  });

  it('retries rmdir while the kernel answers EBUSY', async () => {
    hybridHost();
    const cgroup = new ContainerCgroup('c3', tree);
    cgroup.apply({ pids: { limit: 5 } }, 78);
    let busy = 3;
    const rmdir = tree.rmdir;
    tree.rmdir = (dir) => {
      if (busy-- > 0) throw Object.assign(new Error('busy'), { code: 'EBUSY' });
      rmdir(dir);
    };
    cgroup.removeSync();
    expect(busy).to.equal(-1);
    expect(tree.exists('/sys/fs/cgroup/pids/tsrun/c3')).to.equal(false);
  });

  it('refuses a container id whose cgroup exists, and removes what it made', async () => {
    hybridHost();
    fs.mkdirSync(tree.at('/sys/fs/cgroup/pids/tsrun/c4'), { recursive: true });
    const cgroup = new ContainerCgroup('c4', tree);
    expect(() => cgroup.apply({ memory: { limit: 4096 }, pids: { limit: 5 } }, 79)).to.throw(
      "cgroup '/sys/fs/cgroup/pids/tsrun/c4' exists",
    );
    expect(cgroup.dirs).to.deep.equal(['/sys/fs/cgroup/memory/tsrun/c4']);
    await cgroup.remove();
    expect(tree.exists('/sys/fs/cgroup/memory/tsrun/c4')).to.equal(false);
    expect(tree.exists('/sys/fs/cgroup/pids/tsrun/c4')).to.equal(true);
  });

  it('enables the controllers on cgroup v2 in the root and in tsrun/', () => {
    tree.put('/proc/self/mountinfo', V2);
    tree.put('/sys/fs/cgroup/cgroup.controllers', 'cpu memory pids\n');
    tree.put('/sys/fs/cgroup/cgroup.subtree_control', 'memory\n');
    const mkdir = tree.mkdir;
    tree.mkdir = (dir) => {
      mkdir(dir);
      tree.put(`${dir}/cgroup.subtree_control`, '');
    };
    const cgroup = new ContainerCgroup('c5', tree);
    cgroup.apply({ memory: { limit: 8192 }, cpu: { shares: 2 } }, 80);
    expect(tree.writes).to.deep.equal([
      '/sys/fs/cgroup/cgroup.subtree_control=+cpu',
      '/sys/fs/cgroup/tsrun/cgroup.subtree_control=+memory',
      '/sys/fs/cgroup/tsrun/cgroup.subtree_control=+cpu',
      '/sys/fs/cgroup/tsrun/c5/memory.max=8192',
      '/sys/fs/cgroup/tsrun/c5/cpu.weight=1',
      '/sys/fs/cgroup/tsrun/c5/cgroup.procs=80',
    ]);
    cgroup.removeSync();
  });

  it('checks the file against the host in stage 1', function () {
    if (process.getuid!() !== 0) return this.skip();
    hybridHost();
    tree.put('/sys/devices/system/cpu/online', '0-1\n');
    const file = tree.at('r.json');
    fs.writeFileSync(file, '{"cpu": {"cpus": "0-3"}}');
    expect(() => prepareCgroups(file, tree)).to.throw(
      `--apply-cgroups '${file}': cpu.cpus '0-3' names CPUs that are not online (0-1)`,
    );
    fs.writeFileSync(file, '{"memory": {"disableOOMKiller": true}}');
    tree.put('/proc/self/mountinfo', V2);
    tree.put('/sys/fs/cgroup/cgroup.controllers', 'memory\n');
    expect(() => prepareCgroups(file, tree)).to.throw(/not supported on cgroup v2/);
    fs.writeFileSync(file, '{"memory": {"limit": 10, "swap": 20}}');
    tree.put('/proc/self/mountinfo', HYBRID);
    fs.rmSync(tree.at('/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes'));
    expect(() => prepareCgroups(file, tree)).to.throw(/needs swap accounting/);
  });
});
