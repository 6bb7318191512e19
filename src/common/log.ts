// Logging for every stage: pino to stderr, one child logger per process carrying the stage and the
// container id. The level (-d, -v, default, -q) crosses process boundaries in TSRUN_LOG_LEVEL, the
// format in TSRUN_LOG_FORMAT ('json' or 'pretty'). pino is loaded on the first record that is
// actually written, so a quiet run never pays for loading it.
import * as fs from 'node:fs';
import type * as Pino from 'pino';

export const LEVELS = { error: 50, warn: 40, info: 30, verbose: 25, debug: 20 } as const;
export type Level = keyof typeof LEVELS;
export type Stage = 'wrapper' | 'starter' | 'stage1' | 'master' | 'rpc' | 'stage2';

export const LEVEL_ENV = 'TSRUN_LOG_LEVEL';
export const FORMAT_ENV = 'TSRUN_LOG_FORMAT';

type Fields = Record<string, unknown>;
type LogFn = (fieldsOrMsg: Fields | string, msg?: string) => void;

/** A record handed to a sink instead of pino (stage 2 forwards its records to the master). */
export interface LogRecord {
  level: Level;
  msg: string;
  fields: Fields;
}
export type LogSink = (record: LogRecord) => void;

export interface Logger {
  error: LogFn;
  warn: LogFn;
  info: LogFn;
  verbose: LogFn;
  debug: LogFn;
  enabled(level: Level): boolean;
  /** Re-emits a record that another process produced, keeping its stage and fields. */
  emit(record: LogRecord): void;
  /** Loads pino now: for stages whose root changes under them before they log. */
  preload(): void;
  setContainerID(id: string): void;
  /** The starter becomes the master: later records carry the new stage. */
  setStage(stage: Stage): void;
}

export function levelFromEnv(env: NodeJS.ProcessEnv = process.env): Level {
  const value = env[LEVEL_ENV];
  return value !== undefined && value in LEVELS ? (value as Level) : 'warn';
}

/**
 * Writes to fd 2 directly. Never use process.stderr/stdout: libuv makes a pipe non-blocking when it
 * wraps it, and the payload shares that open file description.
 */
export function writeStderr(text: string): void {
  try {
    fs.writeSync(2, text);
  } catch {
    // Nothing sensible is left to do when stderr itself is gone.
  }
}

function isFields(value: unknown): value is Fields {
  return typeof value === 'object' && value !== null;
}

function prettyStream(): NodeJS.WritableStream {
  const pretty = require('pino-pretty') as typeof import('pino-pretty');
  return pretty.build({
    destination: 2,
    sync: true,
    colorize: require('node:tty').isatty(2),
    ignore: 'pid,hostname,stage,cid',
    translateTime: 'HH:MM:ss.l',
    messageFormat: '{stage} {cid}: {msg}',
    customLevels: 'verbose:25',
    customColors: 'verbose:cyan',
    useOnlyCustomProps: false,
    singleLine: true,
  });
}

function makePino(level: Level, bindings: Fields): Pino.Logger<'verbose'> {
  const pino = require('pino') as typeof import('pino');
  const options: Pino.LoggerOptions<'verbose'> = {
    level,
    customLevels: { verbose: LEVELS.verbose },
    base: { pid: process.pid },
    // Stage and container id come from the bindings at each record (they change when the starter
    // becomes the master); a record re-emitted for another stage carries its own, which win.
    mixin: () => ({ stage: bindings.stage, cid: bindings.cid }),
  };
  const json = process.env[FORMAT_ENV] === 'json';
  const stream = json ? pino.destination({ fd: 2, sync: true }) : prettyStream();
  return pino.default(options, stream);
}

/** Creates the logger of this process. With a sink, records go to the sink, never to pino. */
export function createLogger(stage: Stage, cid = '', sink?: LogSink): Logger {
  const level = levelFromEnv();
  const bindings: Fields = { stage, cid };
  let backend: Pino.Logger<'verbose'> | undefined;
  let broken = false;

  const write = (lvl: Level, msg: string, fields: Fields): void => {
    if (sink !== undefined) return sink({ level: lvl, msg, fields: { ...bindings, ...fields } });
    if (!broken) {
      try {
        backend ??= makePino(level, bindings);
        backend[lvl](fields, msg);
        return;
      } catch {
        // pino cannot be loaded once the root has changed: fall back to a plain line.
        broken = true;
      }
    }
    writeStderr(`tsrun: ${String(bindings.stage)}: ${lvl}: ${msg} ${JSON.stringify(fields)}\n`);
  };
  const fn =
    (lvl: Level): LogFn =>
    (fieldsOrMsg, msg) => {
      if (LEVELS[lvl] < LEVELS[level]) return;
      if (isFields(fieldsOrMsg)) write(lvl, msg ?? '', fieldsOrMsg);
      else write(lvl, fieldsOrMsg, {});
    };
  return {
    error: fn('error'),
    warn: fn('warn'),
    info: fn('info'),
    verbose: fn('verbose'),
    debug: fn('debug'),
    enabled: (lvl) => LEVELS[lvl] >= LEVELS[level],
    emit: (record) => {
      if (LEVELS[record.level] >= LEVELS[level]) write(record.level, record.msg, record.fields);
    },
    preload: () => {
      if (sink === undefined) backend ??= makePino(level, bindings);
    },
    setContainerID: (id) => {
      bindings.cid = id;
    },
    setStage: (name) => {
      bindings.stage = name;
    },
  };
}

let current: Logger | undefined;

/** Creates this process's logger; every module then gets it with log(). */
export function initLog(stage: Stage, cid = '', sink?: LogSink): Logger {
  current = createLogger(stage, cid, sink);
  return current;
}

/** This process's logger (a 'wrapper' logger when none was made). */
export function log(): Logger {
  current ??= createLogger('wrapper');
  return current;
}
