#!/usr/bin/env node
// @ts-check
// Startup benchmark: wall time of `tsrun exec ROOTFS /bin/true` beside runc, crun, bwrap and a
// bare `node -e 0` on the same rootfs, timed by hyperfine; then the memory of tsrun's processes
// while a container runs (bench/memory.js).
//
// Usage (as root, from anywhere): node bench/startup.js [--runs 20] [--warmup 3]
//   [--image images/busybox] [--debian /var/cache/tsrun-test/debian-bookworm | --no-debian]
// Needs hyperfine, runc, crun and bwrap (scripts/setup.sh installs them). A command that fails
// prints its error in its row. Leaves no container, cgroup or temporary directory behind.
'use strict';

const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { parseArgs } = require('node:util');
const { REPO, TSRUN, ENV, failure, firstLine } = require('./lib.js');
const { reportMemory } = require('./memory.js');

// runc and crun keep state per container id; one id per benchmark run, removed at the end.
const ID = `tsrun-bench-${process.pid}`;

function options() {
  const { values } = parseArgs({
    options: {
      runs: { type: 'string', default: '20' },
      warmup: { type: 'string', default: '3' },
      image: { type: 'string', default: path.join(REPO, 'images', 'busybox') },
      debian: { type: 'string', default: '/var/cache/tsrun-test/debian-bookworm' },
      'no-debian': { type: 'boolean', default: false },
    },
  });
  return values;
}

/** The rootfs to measure on: the default image, and the Debian one if it has been built. */
function rootfsList(opts) {
  const list = [{ name: 'busybox', dir: path.resolve(opts.image) }];
  if (!opts['no-debian'] && fs.existsSync(path.join(opts.debian, '.tsrun-stamp'))) {
    list.push({ name: 'debian', dir: path.resolve(opts.debian) });
  }
  return list;
}

/** An OCI bundle in DIR whose config runs /bin/true on ROOTFS, read-only, without a terminal. */
function makeBundle(dir, rootfs) {
  const out = spawnSync('runc', ['spec', '--bundle', dir], { env: ENV, encoding: 'utf8' });
  if (out.status !== 0) throw new Error(`runc spec: ${failure(out)}`);
  const file = path.join(dir, 'config.json');
  const spec = JSON.parse(fs.readFileSync(file, 'utf8'));
  spec.root = { path: rootfs, readonly: true };
  spec.process.terminal = false;
  spec.process.args = ['/bin/true'];
  // tsrun exec and bwrap keep the host's network; a new net namespace would cost runc and crun
  // time that the others do not spend.
  spec.linux.namespaces = spec.linux.namespaces.filter((ns) => ns.type !== 'network');
  fs.writeFileSync(file, JSON.stringify(spec, null, 2));
}

function peers(rootfs, bundle, state) {
  const oci = (rt, ...flags) => [rt, '--root', `${state}/${rt}`, ...flags, 'run', '-b', bundle, ID];
  return [
    { name: 'tsrun exec', argv: [TSRUN, 'exec', rootfs, '/bin/true'] },
    { name: 'runc run', argv: oci('runc') },
    { name: 'crun run', argv: oci('crun') },
    // Neither tsrun exec nor bwrap makes a cgroup; crun can skip it too (runc cannot), which
    // shows what cgroup set-up costs, and works on hosts where crun rejects the cgroup layout.
    { name: 'crun nocg', argv: oci('crun', '--cgroup-manager=disabled') },
    {
      name: 'bwrap',
      argv: ['bwrap', '--ro-bind', rootfs, '/', '--proc', '/proc', '--dev', '/dev', '/bin/true'],
    },
    { name: 'node -e 0', argv: ['node', '-e', '0'] },
  ];
}

/** hyperfine -N splits its command like a shell does; quote each word that needs it. */
function shellJoin(argv) {
  const quote = (a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`);
  return argv.map(quote).join(' ');
}

/** Median, min and stddev in ms, or the error that stopped the command. */
function measure(argv, opts, jsonFile) {
  // One plain run first: hyperfine's own message for a failing command hides the command's.
  const once = spawnSync(argv[0], argv.slice(1), { env: ENV, encoding: 'utf8', timeout: 60e3 });
  if (once.status !== 0 || once.error) return { error: failure(once) };

  const args = ['-N', '--style', 'none', '--warmup', opts.warmup, '--runs', opts.runs];
  args.push('--export-json', jsonFile, shellJoin(argv));
  const hf = spawnSync('hyperfine', args, { env: ENV, encoding: 'utf8' });
  if (hf.status !== 0 || hf.error) return { error: `hyperfine: ${failure(hf)}` };
  const r = JSON.parse(fs.readFileSync(jsonFile, 'utf8')).results[0];
  return { median: r.median * 1e3, min: r.min * 1e3, stddev: r.stddev * 1e3 };
}

function printTable(title, rows) {
  const base = rows[0].result.median;
  const ratio = (x) => (base ? x.toFixed(2) : '-');
  const line = (name, cells) => name.padEnd(12) + cells.map((c) => c.padStart(10)).join('');
  console.log(`\n${title}`);
  console.log(line('command', ['median ms', 'min ms', 'stddev', 'x/tsrun', 'tsrun/x']));
  for (const { name, result: r } of rows) {
    if (r.error) {
      console.log(`${name.padEnd(12)}error: ${r.error}`);
      continue;
    }
    const cells = [r.median, r.min, r.stddev].map((v) => v.toFixed(1));
    console.log(line(name, [...cells, ratio(r.median / base), ratio(base / r.median)]));
  }
}

/** Deletes what runc or crun may have left: a container killed mid-run keeps its state. */
function deleteContainers(state) {
  for (const rt of ['runc', 'crun']) {
    spawnSync(rt, ['--root', `${state}/${rt}`, 'delete', '-f', ID], { env: ENV, stdio: 'ignore' });
  }
}

function benchStartup(rootfs, opts, tmp) {
  const bundle = path.join(tmp, `bundle-${rootfs.name}`);
  const state = path.join(tmp, 'state');
  const rows = [];
  fs.mkdirSync(bundle);
  makeBundle(bundle, rootfs.dir);
  try {
    for (const peer of peers(rootfs.dir, bundle, state)) {
      rows.push({ name: peer.name, result: measure(peer.argv, opts, path.join(tmp, 'hf.json')) });
    }
  } finally {
    deleteContainers(state);
  }
  printTable(`${rootfs.name} rootfs ${rootfs.dir}: ${opts.runs} runs of /bin/true`, rows);
}

function printVersions() {
  const tools = ['runc', 'crun', 'bwrap', 'hyperfine'].map((t) => firstLine(t, ['--version']));
  console.log(`${os.type()} ${os.release()}, ${os.cpus().length} cpus, node ${process.version}`);
  console.log(tools.join(', '));
}

async function main() {
  const opts = options();
  const list = rootfsList(opts);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-bench-'));
  const cleanup = () => {
    deleteContainers(path.join(tmp, 'state'));
    fs.rmSync(tmp, { recursive: true, force: true });
  };
  // Ctrl-C reaches hyperfine and this process alike; clean up before leaving.
  process.once('SIGINT', () => {
    cleanup();
    process.exit(130);
  });
  printVersions();
  try {
    for (const rootfs of list) benchStartup(rootfs, opts, tmp);
  } finally {
    cleanup();
  }
  await reportMemory(list[0].dir);
}

main().catch((err) => {
  console.error(`bench: ${err.message}`);
  process.exit(1);
});
