// Handing the engine config to the starter. The CLI runs the starter's code in its own process
// (tsrun-starter's main, with the config in memory instead of on an fd): the run then costs one
// Node start less, and signals sent to tsrun reach the starter directly.
import { FORMAT_ENV, LEVEL_ENV } from '../common/log';
import type { CommonConfig } from '../engines/config';

export function setLogLevel(opts: {
  debug?: boolean;
  verbose?: boolean;
  quiet?: boolean;
  logFormat?: string;
}): void {
  const level = opts.debug ? 'debug' : opts.verbose ? 'verbose' : opts.quiet ? 'error' : undefined;
  if (level !== undefined) process.env[LEVEL_ENV] = level;
  if (opts.logFormat !== undefined) process.env[FORMAT_ENV] = opts.logFormat;
}

/** Becomes the starter of a container for `config`; the process exits when it ends. */
export function runStarter(config: CommonConfig): void {
  const { starterMain } = require('../master/main') as typeof import('../master/main');
  starterMain(() => Buffer.from(JSON.stringify(config)));
}
