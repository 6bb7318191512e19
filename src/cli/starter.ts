// Handing the engine config to tsrun-starter: the config goes into an unnamed temporary file
// (O_TMPFILE: nothing to clean up, whatever its size) whose fd the starter inherits, and the CLI
// process becomes the starter by execve, so signals sent to tsrun reach the starter.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FORMAT_ENV, LEVEL_ENV } from '../common/log';
import type { CommonConfig } from '../engines/config';
import { addon } from '../native/addon';

const O_TMPFILE = 0o20200000;
const STARTER = path.join(__dirname, '..', 'master', 'main.js');

export function setLogLevel(opts: { debug?: boolean; verbose?: boolean; quiet?: boolean;
  logFormat?: string }): void {
  const level = opts.debug ? 'debug' : opts.verbose ? 'verbose' : opts.quiet ? 'error' : undefined;
  if (level !== undefined) process.env[LEVEL_ENV] = level;
  if (opts.logFormat !== undefined) process.env[FORMAT_ENV] = opts.logFormat;
}

function configFd(config: CommonConfig): number {
  let fd: number;
  try {
    fd = fs.openSync(os.tmpdir(), O_TMPFILE | fs.constants.O_RDWR, 0o600);
  } catch {
    const file = path.join(os.tmpdir(), `tsrun-config-${process.pid}`);
    fd = fs.openSync(file, 'wx+', 0o600);
    fs.unlinkSync(file);
  }
  fs.writeSync(fd, JSON.stringify(config));
  return fd;
}

/** Replaces this process with tsrun-starter; returns only by throwing. */
export function execStarter(config: CommonConfig): never {
  const fd = configFd(config);
  addon().setCloexec(fd, false);
  const env: Record<string, string> = { TSRUN_CONFIG_FD: String(fd) };
  for (const name of [LEVEL_ENV, FORMAT_ENV]) {
    const value = process.env[name];
    if (value !== undefined) env[name] = value;
  }
  const envp = Object.entries(env).map(([k, v]) => `${k}=${v}`);
  return addon().execve(process.execPath, [process.execPath, STARTER], envp);
}
