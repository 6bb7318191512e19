// @ts-check
// What the benchmarks share: the environment their children run in and how a failure is shown.
'use strict';

const { spawnSync } = require('node:child_process');
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

module.exports = { REPO, TSRUN, ENV, failure, firstLine };
