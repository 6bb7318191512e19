// What stage 2 execs for each action, the way Singularity runs images: for an image with
// Singularity's layout (/.singularity.d), a small /bin/sh script sources the image's env/*.sh in
// order and then runs the command, the runscript (/singularity as a fallback) or a shell. An image
// without that layout runs the command directly.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { TsrunError } from '../../common/errors';
import type { Action } from './config';
import {
  APPLY_OVERRIDES,
  directEnvironment,
  PayloadEnvironment,
  scriptEnvironment,
} from './environment';

const SOURCE_ENV =
  'for f in /.singularity.d/env/*.sh; do [ -f "$f" ] && . "$f"; done; ' + APPLY_OVERRIDES;

const SCRIPTS: Record<Exclude<Action, 'inspect' | 'start'>, string> = {
  exec: `${SOURCE_ENV}exec "$@"`,
  run:
    `${SOURCE_ENV}` +
    'if [ -x /.singularity.d/runscript ]; then exec /.singularity.d/runscript "$@"; fi; ' +
    'if [ -x /singularity ]; then exec /singularity "$@"; fi; ' +
    'echo "tsrun: no runscript in the image, running /bin/sh" >&2; exec /bin/sh "$@"',
  shell: `${SOURCE_ENV}exec /bin/sh "$@"`,
};

const STARTSCRIPT = '/.singularity.d/startscript';

function isExecutable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

/** Finds a command like execvp does, in the container's PATH. */
export function lookPath(cmd: string, pathVar: string): string {
  if (cmd.includes('/')) {
    if (isExecutable(cmd)) return cmd;
    throw new TsrunError(`exec '${cmd}': no such executable file in the container`, 'ENOENT');
  }
  for (const dir of pathVar.split(':')) {
    const file = path.posix.join(dir === '' ? '.' : dir, cmd);
    if (isExecutable(file)) return file;
  }
  throw new TsrunError(`exec '${cmd}': executable file not found in $PATH`, 'ENOENT');
}

export interface ActionCommand {
  file: string;
  argv: string[];
  env: Record<string, string>;
}

/** The program, argv and environment stage 2 execs for an action, inside the container's root. */
export function actionCommand(
  action: Exclude<Action, 'inspect' | 'start'>,
  args: string[],
  environment: PayloadEnvironment,
): ActionCommand {
  const layout = fs.existsSync('/.singularity.d') && isExecutable('/bin/sh');
  if (layout) {
    return {
      file: '/bin/sh',
      argv: ['/bin/sh', '-c', SCRIPTS[action], `tsrun-${action}`, ...args],
      env: scriptEnvironment(environment),
    };
  }
  const env = directEnvironment(environment);
  if (action === 'exec') {
    if (args.length === 0) throw new TsrunError('exec: no command given', 'EINVAL');
    return { file: lookPath(args[0], env.PATH), argv: args, env };
  }
  if (action === 'run') {
    for (const runscript of ['/.singularity.d/runscript', '/singularity']) {
      if (isExecutable(runscript)) return { file: runscript, argv: [runscript, ...args], env };
    }
  }
  return { file: '/bin/sh', argv: ['/bin/sh', ...args], env };
}

/**
 * What an instance runs under its init: the image's startscript (after its env scripts, as the
 * other actions), or nothing (file '') when the image has none; the environment either way.
 */
export function startCommand(args: string[], environment: PayloadEnvironment): ActionCommand {
  if (!isExecutable(STARTSCRIPT))
    return { file: '', argv: [], env: directEnvironment(environment) };
  if (isExecutable('/bin/sh')) {
    return {
      file: '/bin/sh',
      argv: ['/bin/sh', '-c', `${SOURCE_ENV}exec ${STARTSCRIPT} "$@"`, 'tsrun-start', ...args],
      env: scriptEnvironment(environment),
    };
  }
  return { file: STARTSCRIPT, argv: [STARTSCRIPT, ...args], env: directEnvironment(environment) };
}
