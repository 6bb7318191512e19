// The payload's environment, as Singularity and Apptainer build it. Precedence, lowest first: the
// host's variables (all of them, or with --cleanenv only a few), the image's env/*.sh scripts,
// variables named with a prefix (SINGULARITYENV_NAME, APPTAINERENV_NAME, TSRUN_ENV_NAME, the
// latter winning), then --env and --env-file. The container gets its own PATH, not the host's,
// and the image's LD_LIBRARY_PATH and PS1.
//
// Images with Singularity's layout source their env scripts in /bin/sh at exec time, so what must
// win over them travels as __TSRUN_OVERRIDE_<NAME> variables that the action script assigns after
// the scripts ran; values pass through a parameter expansion, never through parsing, and arrive
// byte for byte.
import * as path from 'node:path';
import { usageError } from '../../common/errors';
import type { TsrunEngineConfig } from './config';

/** The PATH of the container, whatever the host's is. */
export const CONTAINER_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** Prefixes that set a variable inside, lowest precedence first. */
export const ENV_PREFIXES = ['SINGULARITYENV_', 'APPTAINERENV_', 'TSRUN_ENV_'] as const;

/** Host variables never passed in: the container has its own. */
const HOST_OMIT = new Set(['PATH', 'LD_LIBRARY_PATH', 'PS1', 'PROMPT_COMMAND']);

/** Host variables --cleanenv keeps. */
const CLEANENV_KEEP = new Set([
  'TERM',
  'LANG',
  'http_proxy',
  'https_proxy',
  'no_proxy',
  'all_proxy',
  'ftp_proxy',
  'HTTP_PROXY',
  'HTTPS_PROXY',
  'NO_PROXY',
  'ALL_PROXY',
  'FTP_PROXY',
]);

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export function isEnvName(name: string): boolean {
  return NAME.test(name);
}

export interface PayloadEnvironment {
  /** What the payload starts with (before the image's scripts, for images with the layout). */
  env: Record<string, string>;
  /** Set after the image's scripts: prefixed variables and --env. */
  overrides: Record<string, string>;
  /** PREPEND_PATH and APPEND_PATH, put around the container's PATH last. */
  prependPath?: string;
  appendPath?: string;
}

/** The prefixed host variables and --env, by name, the last one of a name winning. */
function requested(cfg: TsrunEngineConfig): [string, string][] {
  const out: [string, string][] = [];
  for (const prefix of ENV_PREFIXES) {
    for (const [key, value] of Object.entries(cfg.env)) {
      if (key.startsWith(prefix) && isEnvName(key.slice(prefix.length))) {
        out.push([key.slice(prefix.length), value]);
      }
    }
  }
  return [...out, ...Object.entries(cfg.envSet ?? {})];
}

/** Sorts the host's variables, the prefixed ones and --env into the payload's environment. */
export function buildEnvironment(cfg: TsrunEngineConfig): PayloadEnvironment {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(cfg.env)) {
    if (ENV_PREFIXES.some((p) => key.startsWith(p)) || HOST_OMIT.has(key)) continue;
    if (cfg.cleanEnv === true && !CLEANENV_KEEP.has(key)) continue;
    env[key] = value;
  }
  env.PATH = CONTAINER_PATH;
  if (cfg.user !== undefined) env.HOME = cfg.user.home;
  const name = path.basename(cfg.image);
  for (const prefix of ['TSRUN', 'SINGULARITY', 'APPTAINER']) {
    env[`${prefix}_CONTAINER`] = cfg.image;
    env[`${prefix}_NAME`] = name;
  }
  if (cfg.action === 'shell') env.PS1 = 'tsrun> ';
  const result: PayloadEnvironment = { env, overrides: {} };
  for (const [key, value] of requested(cfg)) {
    if (key === 'PREPEND_PATH') result.prependPath = value;
    else if (key === 'APPEND_PATH') result.appendPath = value;
    else result.overrides[key] = value;
  }
  return result;
}

/** PATH with PREPEND_PATH and APPEND_PATH around it. */
function withPathAdditions(pathVar: string, e: PayloadEnvironment): string {
  const parts = [e.prependPath, pathVar, e.appendPath].filter((p) => p !== undefined && p !== '');
  return parts.join(':');
}

/** The environment of a payload exec'd directly (an image without Singularity's layout). */
export function directEnvironment(e: PayloadEnvironment): Record<string, string> {
  const env = { ...e.env, ...e.overrides };
  env.PATH = withPathAdditions(env.PATH, e);
  return env;
}

/** Shell code that applies the overrides after the image's env scripts. */
export const APPLY_OVERRIDES =
  'for __tsrun_n in $__TSRUN_OVERRIDES; do ' +
  'eval "$__tsrun_n=\\"\\${__TSRUN_OVERRIDE_$__tsrun_n}\\"; export $__tsrun_n; unset __TSRUN_OVERRIDE_$__tsrun_n"; ' +
  'done; ' +
  'if [ -n "${__TSRUN_PREPEND_PATH:-}" ]; then PATH="$__TSRUN_PREPEND_PATH:$PATH"; fi; ' +
  'if [ -n "${__TSRUN_APPEND_PATH:-}" ]; then PATH="$PATH:$__TSRUN_APPEND_PATH"; fi; ' +
  'export PATH; unset __TSRUN_OVERRIDES __TSRUN_PREPEND_PATH __TSRUN_APPEND_PATH __tsrun_n f; ';

/**
 * The environment of the action script of an image with Singularity's layout: the overrides are
 * set before the image's scripts too (they may use them), and again after (they win).
 */
export function scriptEnvironment(e: PayloadEnvironment): Record<string, string> {
  const env = { ...e.env, ...e.overrides };
  const names = Object.keys(e.overrides);
  if (names.length > 0) env.__TSRUN_OVERRIDES = names.join(' ');
  for (const n of names) env[`__TSRUN_OVERRIDE_${n}`] = e.overrides[n];
  if (e.prependPath !== undefined) env.__TSRUN_PREPEND_PATH = e.prependPath;
  if (e.appendPath !== undefined) env.__TSRUN_APPEND_PATH = e.appendPath;
  return env;
}

/** The value of an env-file line after `=`: bare, 'single-quoted' or "double-quoted". */
function envFileValue(raw: string, fail: (why: string) => never): string {
  if (raw.startsWith("'")) {
    if (raw.length < 2 || !raw.endsWith("'") || raw.slice(1, -1).includes("'")) {
      fail('unterminated single quote');
    }
    return raw.slice(1, -1);
  }
  if (!raw.startsWith('"')) return raw;
  let out = '';
  for (let i = 1; i < raw.length; i++) {
    const c = raw[i];
    if (c === '"') {
      if (i !== raw.length - 1) fail('text after the closing double quote');
      return out;
    }
    if (c === '\\' && i + 1 < raw.length) {
      const next = raw[++i];
      out += next === 'n' ? '\n' : next === 't' ? '\t' : next;
    } else {
      out += c;
    }
  }
  return fail('unterminated double quote');
}

/**
 * Parses an --env-file: `NAME=VALUE` lines (an `export ` before the name is allowed), blank lines
 * and `#` comments; VALUE bare, in single quotes (as it is) or in double quotes (with \n, \t, \\
 * and \" escapes). `file` names it in errors, with the line number.
 */
export function parseEnvFile(text: string, file: string): Record<string, string> {
  const out: Record<string, string> = {};
  text.split('\n').forEach((raw, i) => {
    const fail = (why: string): never => {
      throw usageError(`--env-file '${file}' line ${i + 1}: ${why}`);
    };
    const line = raw.replace(/\r$/, '');
    const trimmed = line.trim();
    if (trimmed === '' || trimmed.startsWith('#')) return;
    const body = trimmed.replace(/^export\s+/, '');
    const eq = body.indexOf('=');
    if (eq < 0) fail(`expected NAME=VALUE, found '${trimmed}'`);
    const name = body.slice(0, eq);
    if (!isEnvName(name)) fail(`'${name}' is not a variable name`);
    out[name] = envFileValue(body.slice(eq + 1), fail);
  });
  return out;
}
