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
const { REPO, TSRUN, ENV, failure, firstLine, run, stopChildren } = require('./lib.js');
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
  // runc spec's default config, or crun's when runc is missing.
  const spec = (rt) => spawnSync(rt, ['spec'], { cwd: dir, env: ENV, encoding: 'utf8' });
  const made = [spec('runc'), spec('crun')];
  if (made.every((r) => r.status !== 0)) throw new Error(`runc spec: ${failure(made[0])}`);
  const file = path.join(dir, 'config.json');
  const config = JSON.parse(fs.readFileSync(file, 'utf8'));
  config.root = { path: rootfs, readonly: true };
  config.process.terminal = false;
  config.process.args = ['/bin/true'];
  // tsrun exec and bwrap keep the host's network; a new net namespace would cost runc and crun
  // time that the others do not spend.
  config.linux.namespaces = config.linux.namespaces.filter((ns) => ns.type !== 'network');
  fs.writeFileSync(file, JSON.stringify(config, null, 2));
}

/** The same rootfs as image files: a squashfs file made here, and the shared SIF fixture. */
function imageFiles(rootfs, tmp) {
  const files = [];
  const sqfs = path.join(tmp, `${rootfs.name}.sqfs`);
  const made = spawnSync('mksquashfs', [rootfs.dir, sqfs, '-noappend', '-quiet'], {
    encoding: 'utf8',
  });
  files.push({ name: 'tsrun squashfs', file: made.status === 0 ? sqfs : null, made });
  const sif = path.join(REPO, '..', 'shared', 'fixtures', 'singularity-3.1-busybox.sif');
  if (rootfs.name === 'busybox' && fs.existsSync(sif)) files.push({ name: 'tsrun SIF', file: sif });
  return files;
}

/** The ordinary user the tests use, for the user-namespace rows (scripts/test-prereqs.sh). */
const USERNS_USER = 'tsrun-test';

function userExists(name) {
  return spawnSync('id', [name], { stdio: 'ignore' }).status === 0;
}

/** The same runs as that user: tsrun's user-namespace mode (squashfs through squashfuse). */
function usernsRows(rootfs, files) {
  const as = ['setpriv', '--reuid', USERNS_USER, '--regid', USERNS_USER, '--init-groups'];
  const error = userExists(USERNS_USER) ? undefined : `no user ${USERNS_USER} (npm test adds it)`;
  return [
    { name: 'userns exec', argv: [...as, TSRUN, 'exec', rootfs, '/bin/true'], error },
    ...files.map((f) => ({
      name: f.name.replace('tsrun', 'userns'),
      argv: [...as, TSRUN, 'exec', f.file, '/bin/true'],
      error: error ?? (f.file === null ? `mksquashfs: ${failure(f.made)}` : undefined),
    })),
  ];
}

function peers(rootfs, bundle, state, files, instance) {
  const oci = (rt) => [rt, '--root', `${state}/${rt}`, 'run', '--bundle', bundle, ID];
  const list = [
    { name: 'tsrun exec', argv: [TSRUN, 'exec', rootfs, '/bin/true'] },
    {
      name: 'tsrun join',
      argv: [TSRUN, 'exec', `instance://${instance.name}`, '/bin/true'],
      error: instance.error,
    },
    ...files.map((f) => ({
      name: f.name,
      argv: [TSRUN, 'exec', f.file, '/bin/true'],
      error: f.file === null ? `mksquashfs: ${failure(f.made)}` : undefined,
    })),
    ...usernsRows(rootfs, files),
    { name: 'runc run', argv: oci('runc'), oci: true },
    { name: 'crun run', argv: oci('crun'), oci: true },
    {
      name: 'bwrap',
      argv: ['bwrap', '--ro-bind', rootfs, '/', '--proc', '/proc', '--dev', '/dev', '/bin/true'],
    },
    { name: 'node -e 0', argv: ['node', '-e', '0'] },
  ];
  const afterCrun = list.findIndex((p) => p.name === 'crun run') + 1;
  if (hybridCgroups()) list.splice(afterCrun, 0, ...cgroupV1Rows(oci('crun')));
  return list;
}

/** Whether the host mounts cgroup v1 hierarchies and a cgroup2 one beside them. */
function hybridCgroups() {
  const info = fs.readFileSync('/proc/self/mountinfo', 'utf8');
  return / \/sys\/fs\/cgroup\/unified .* - cgroup2 /.test(info);
}

// crun refuses a hybrid cgroup layout whose cgroup2 part has controllers. Run it where that part
// is unmounted (a private mount namespace), so it sees plain cgroup v1 as runc does, and time
// that wrapper alone too, so its cost can be subtracted.
function cgroupV1Rows(crunArgv) {
  const v1 = (cmd) => ['unshare', '-m', '--propagation', 'private', 'sh', '-c', cmd];
  const unmount = 'umount /sys/fs/cgroup/unified && exec';
  return [
    { name: 'crun in v1', argv: v1(`${unmount} ${shellJoin(crunArgv)}`), oci: true },
    { name: 'v1 wrapper', argv: v1(`${unmount} /bin/true`) },
  ];
}

/** hyperfine -N splits its command like a shell does; quote each word that needs it. */
function shellJoin(argv) {
  const quote = (a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`);
  return argv.map(quote).join(' ');
}

/** Median, min and stddev in ms, or the error that stopped the command. */
async function measure(argv, opts, jsonFile) {
  // One plain run first: hyperfine's own message for a failing command hides the command's.
  const once = await run(argv, 60e3);
  if (once.status !== 0 || once.error) return { error: failure(once) };

  const args = ['-N', '--style', 'none', '--warmup', opts.warmup, '--runs', opts.runs];
  const hf = await run(['hyperfine', ...args, '--export-json', jsonFile, shellJoin(argv)]);
  if (hf.status !== 0 || hf.error) return { error: `hyperfine: ${failure(hf)}` };
  const r = JSON.parse(fs.readFileSync(jsonFile, 'utf8')).results[0];
  return { median: r.median * 1e3, min: r.min * 1e3, stddev: r.stddev * 1e3 };
}

function printTable(title, rows) {
  const base = rows[0].result.median;
  const ratio = (x) => (base ? x.toFixed(2) : '-');
  const line = (name, cells) => name.padEnd(15) + cells.map((c) => c.padStart(10)).join('');
  console.log(`\n${title}`);
  console.log(line('command', ['median ms', 'min ms', 'stddev', 'x/tsrun', 'tsrun/x']));
  for (const { name, result: r } of rows) {
    if (r.error) {
      console.log(`${name.padEnd(15)}error: ${r.error}`);
      continue;
    }
    const cells = [r.median, r.min, r.stddev].map((v) => v.toFixed(1));
    console.log(line(name, [...cells, ratio(r.median / base), ratio(base / r.median)]));
  }
}

/**
 * Deletes what runc or crun may have left when stopped mid-run: the container's state, and the
 * cgroups named after its id (v1 hierarchies, and the v2 root) if the state was never written.
 */
function deleteContainers(state) {
  for (const rt of ['runc', 'crun']) {
    spawnSync(rt, ['--root', `${state}/${rt}`, 'delete', '-f', ID], { env: ENV, stdio: 'ignore' });
  }
  const top = '/sys/fs/cgroup';
  for (const dir of [top, ...fs.readdirSync(top).map((d) => path.join(top, d))]) {
    try {
      fs.rmdirSync(path.join(dir, ID));
    } catch {
      // Not there (the usual case), or still busy: nothing more to do here.
    }
  }
}

async function benchStartup(rootfs, opts, tmp) {
  const bundle = path.join(tmp, `bundle-${rootfs.name}`);
  const state = path.join(tmp, 'state');
  const rows = [];
  let bundleError = null;
  fs.mkdirSync(bundle);
  try {
    makeBundle(bundle, rootfs.dir);
  } catch (err) {
    bundleError = { error: `no OCI bundle: ${err.message}` };
  }
  // An instance of the rootfs, for the 'tsrun join' row: joining it, beside starting one.
  const instance = { name: `${ID}-${rootfs.name}`, error: undefined };
  const started = spawnSync(TSRUN, ['instance', 'start', rootfs.dir, instance.name], {
    env: ENV,
    encoding: 'utf8',
  });
  if (started.status !== 0) instance.error = `instance start: ${failure(started)}`;
  try {
    for (const peer of peers(rootfs.dir, bundle, state, imageFiles(rootfs, tmp), instance)) {
      const skip = (peer.oci && bundleError) || (peer.error && { error: peer.error });
      const result = skip || (await measure(peer.argv, opts, path.join(tmp, 'hf.json')));
      rows.push({ name: peer.name, result });
    }
  } finally {
    deleteContainers(state);
    spawnSync(TSRUN, ['instance', 'stop', '--force', instance.name], { env: ENV, stdio: 'ignore' });
  }
  printTable(`${rootfs.name} rootfs ${rootfs.dir}: ${opts.runs} runs of /bin/true`, rows);
  if (rows.some((r) => r.name === 'tsrun SIF')) {
    console.log("'tsrun SIF' runs the shared SIF fixture (a busybox image Singularity 3.1 built)");
  }
  console.log("'tsrun join' runs /bin/true in a running instance of the rootfs (exec instance://)");
  console.log(
    `'userns' rows run as the user ${USERNS_USER}: the user-namespace mode (squashfs and SIF through squashfuse)`,
  );
  if (rows.some((r) => r.name === 'v1 wrapper')) {
    console.log("'crun in v1' includes 'v1 wrapper': unshare -m, umount of the cgroup2 part, exec");
  }
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
  fs.chmodSync(tmp, 0o755); // the userns rows run as an ordinary user, who reads the images here
  const cleanup = () => {
    deleteContainers(path.join(tmp, 'state'));
    fs.rmSync(tmp, { recursive: true, force: true });
  };
  // hyperfine survives Ctrl-C (it only stops the current run), so stop it, then clean up.
  for (const sig of ['SIGINT', 'SIGTERM']) {
    process.once(sig, async () => {
      await stopChildren();
      cleanup();
      process.exit(128 + os.constants.signals[sig]);
    });
  }
  printVersions();
  try {
    for (const rootfs of list) await benchStartup(rootfs, opts, tmp);
  } finally {
    cleanup();
  }
  await reportMemory(list[0].dir);
}

main().catch((err) => {
  console.error(`bench: ${err.message}`);
  process.exit(1);
});
