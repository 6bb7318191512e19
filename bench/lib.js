// @ts-check
// What the benchmarks share: the environment their children run in and how a failure is shown.
'use strict';

const { spawn, spawnSync } = require('node:child_process');
const path = require('node:path');

const REPO = path.resolve(__dirname, '..');
// TSRUN_BIN measures another build or a stand-in; the default is the repo's launcher.
const TSRUN = process.env.TSRUN_BIN || path.join(REPO, 'bin', 'tsrun');

// NODE_EXTRA_CA_CERTS makes every Node start read a certificate file (~75 ms here); tsrun's
// launcher drops it, so no child of a benchmark sees it and the `node -e 0` row is comparable.
const ENV = { ...process.env };
delete ENV.NODE_EXTRA_CA_CERTS;

/**
 * How a finished child ended, with the first line of its stderr when there is one.
 * @param {{error?: Error, signal?: string | null, status: number | null, stderr?: string}} res
 */
function failure(res) {
  if (res.error) return res.error.message;
  const line = (res.stderr || '').split('\n').find((l) => l.trim() !== '');
  const how = res.signal ? `killed by ${res.signal}` : `exit ${res.status}`;
  return line ? `${how}: ${line.trim().slice(0, 100)}` : how;
}

/** The first line a command prints, or why it could not print it. */
function firstLine(cmd, args) {
  const r = spawnSync(cmd, args, { env: ENV, encoding: 'utf8' });
  return r.status === 0 ? r.stdout.split('\n')[0].trim() : `${cmd}: ${failure(r)}`;
}

// Children alive now, so an interrupted benchmark can stop them before it cleans up.
const running = new Set();

/**
 * Runs ARGV to its end without blocking the event loop (so Ctrl-C is handled at once); resolves
 * with what failure() reads. stdout is discarded.
 * @param {string[]} argv
 * @returns {Promise<{error?: Error, signal: string | null, status: number | null, stderr: string}>}
 */
function run(argv, timeoutMs = 0) {
  return new Promise((resolve) => {
    const child = spawn(argv[0], argv.slice(1), { env: ENV, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    const timer = timeoutMs ? setTimeout(() => child.kill('SIGKILL'), timeoutMs) : null;
    running.add(child);
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', (error) => resolve({ error, signal: null, status: null, stderr }));
    child.on('close', (status, signal) => {
      running.delete(child);
      if (timer) clearTimeout(timer);
      resolve({ status, signal, stderr });
    });
  });
}

/** Kills the children run() started and waits until they are gone. */
async function stopChildren() {
  const gone = [...running].map((c) => new Promise((r) => c.once('close', r)));
  for (const child of running) child.kill('SIGKILL');
  await Promise.all(gone);
}

module.exports = { REPO, TSRUN, ENV, failure, firstLine, run, stopChildren };
