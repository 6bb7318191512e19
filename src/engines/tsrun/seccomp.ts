// Seccomp profiles in the OCI runtime-spec format (`linux.seccomp` of config.json), for
// --security seccomp:FILE. Stage 1 reads the file on the host, checks every field and compiles it
// with libseccomp into BPF; stage 2 hands the BPF to the addon's execve, which loads it on the
// thread that execs, right before the execve system call.
import * as fs from 'node:fs';
import { errorMessage, usageError } from '../../common/errors';
import { log } from '../../common/log';
import { addon, SeccompComparison, SeccompProgram } from '../../native/addon';
import type { SeccompConfig } from '../config';

/** Largest profile file read (Docker's default profile is about 20 KiB). */
export const MAX_PROFILE_SIZE = 1 << 20;
/** The kernel's limit on a filter's length (BPF_MAXINSNS). */
const MAX_INSTRUCTIONS = 4096;
const SOCK_FILTER_SIZE = 8;
const EPERM = 1;

const ACTIONS = [
  'SCMP_ACT_KILL',
  'SCMP_ACT_KILL_THREAD',
  'SCMP_ACT_KILL_PROCESS',
  'SCMP_ACT_TRAP',
  'SCMP_ACT_ERRNO',
  'SCMP_ACT_TRACE',
  'SCMP_ACT_LOG',
  'SCMP_ACT_ALLOW',
];
/** Actions that carry a number: the errno, or the tracer's message. */
const ACTIONS_WITH_RET = ['SCMP_ACT_ERRNO', 'SCMP_ACT_TRACE'];
const OPERATORS = [
  'SCMP_CMP_NE',
  'SCMP_CMP_LT',
  'SCMP_CMP_LE',
  'SCMP_CMP_EQ',
  'SCMP_CMP_GE',
  'SCMP_CMP_GT',
  'SCMP_CMP_MASKED_EQ',
];
/** Flags the kernel applies when the filter is loaded; TSYNC changes nothing for tsrun. */
const FLAGS: Record<string, number> = {
  SECCOMP_FILTER_FLAG_TSYNC: 0,
  SECCOMP_FILTER_FLAG_LOG: 2,
  SECCOMP_FILTER_FLAG_SPEC_ALLOW: 4,
};
const KNOWN_FIELDS = ['defaultAction', 'defaultErrnoRet', 'architectures', 'flags', 'syscalls'];

type Obj = Record<string, unknown>;

function isObject(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isStringArray(v: unknown): v is string[] {
  return Array.isArray(v) && v.every((s) => typeof s === 'string');
}

/** A JSON number read exactly: a whole number in [0, max]. */
function uint(value: unknown, where: string, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) {
    throw new Error(`${where} must be a whole number >= 0`);
  }
  if (value > max) {
    const limit =
      max === Number.MAX_SAFE_INTEGER
        ? '2^53 - 1 (larger JSON numbers are not read exactly)'
        : String(max);
    throw new Error(`${where} must be at most ${limit}`);
  }
  return value;
}

/** An action name and the number that goes with it (errnoRet, EPERM by default). */
function action(name: unknown, ret: unknown, where: string, retField: string) {
  if (typeof name !== 'string') throw new Error(`${where} must be a string`);
  if (name === 'SCMP_ACT_NOTIFY') throw new Error(`${where}: SCMP_ACT_NOTIFY is not supported`);
  if (!ACTIONS.includes(name)) throw new Error(`${where}: unknown action '${name}'`);
  if (ret !== undefined && !ACTIONS_WITH_RET.includes(name)) {
    throw new Error(`${retField} goes only with SCMP_ACT_ERRNO or SCMP_ACT_TRACE, not ${name}`);
  }
  return { action: name, ret: ret === undefined ? EPERM : uint(ret, retField, 0xffff) };
}

function comparison(value: unknown, where: string): SeccompComparison {
  if (!isObject(value)) throw new Error(`${where} must be an object`);
  const { index, value: v, valueTwo, op } = value;
  if (typeof op !== 'string' || !OPERATORS.includes(op)) {
    throw new Error(`${where}.op: unknown operator '${String(op)}'`);
  }
  return {
    index: uint(index, `${where}.index`, 5),
    op,
    value: BigInt(uint(v, `${where}.value`, Number.MAX_SAFE_INTEGER)),
    valueTwo: BigInt(uint(valueTwo ?? 0, `${where}.valueTwo`, Number.MAX_SAFE_INTEGER)),
  };
}

/**
 * The rules of one syscalls[] entry. libseccomp takes one comparison per argument in a rule, so
 * comparisons of one argument become separate rules (either matches), as runc does.
 */
function syscallRules(entry: unknown, where: string): SeccompProgram['rules'] {
  if (!isObject(entry)) throw new Error(`${where} must be an object`);
  const { names, args } = entry;
  if (!isStringArray(names) || names.length === 0) {
    throw new Error(`${where}.names must be a non-empty array of strings`);
  }
  const act = action(entry.action, entry.errnoRet, `${where}.action`, `${where}.errnoRet`);
  if (args !== undefined && !Array.isArray(args)) throw new Error(`${where}.args must be an array`);
  const cmps = (args ?? []).map((a, i) => comparison(a, `${where}.args[${i}]`));
  const indexes = cmps.map((c) => c.index);
  const groups = new Set(indexes).size === indexes.length ? [cmps] : cmps.map((c) => [c]);
  names.forEach((name, i) => {
    if (!addon().seccompSyscallKnown(name)) {
      throw new Error(`${where}.names[${i}]: unknown system call '${name}'`);
    }
  });
  return names.flatMap((syscall) => groups.map((group) => ({ syscall, ...act, args: group })));
}

/** 'SCMP_ARCH_X86_64' -> libseccomp's 'x86_64'. */
function architecture(name: unknown, where: string): string {
  const arch = typeof name === 'string' ? name.replace(/^SCMP_ARCH_/, '').toLowerCase() : '';
  if (arch === '' || !addon().seccompArchKnown(arch)) {
    throw new Error(`${where}: unknown architecture '${String(name)}'`);
  }
  return arch;
}

function loadFlags(flags: unknown): number {
  if (flags === undefined) return 0;
  if (!isStringArray(flags)) throw new Error('flags must be an array of strings');
  return flags.reduce((bits, flag, i) => {
    if (!Object.hasOwn(FLAGS, flag)) throw new Error(`flags[${i}]: '${flag}' is not supported`);
    return bits | FLAGS[flag];
  }, 0);
}

/** Checks a parsed profile; returns the filter to compile and its load flags. */
export function checkProfile(profile: unknown): { program: SeccompProgram; flags: number } {
  if (!isObject(profile)) throw new Error('a profile must be a JSON object');
  const def = action(
    profile.defaultAction,
    profile.defaultErrnoRet,
    'defaultAction',
    'defaultErrnoRet',
  );
  const { architectures = [], syscalls = [], listenerPath } = profile;
  if (listenerPath !== undefined && listenerPath !== '') {
    throw new Error('listenerPath: seccomp notification is not supported');
  }
  if (!Array.isArray(architectures)) throw new Error('architectures must be an array');
  if (!Array.isArray(syscalls)) throw new Error('syscalls must be an array');
  const rules = syscalls
    .flatMap((entry, i) => syscallRules(entry, `syscalls[${i}]`))
    // A rule that does what the default does changes nothing, and libseccomp refuses it.
    .filter((r) => r.action !== def.action || r.ret !== def.ret);
  const program: SeccompProgram = {
    defaultAction: def.action,
    defaultRet: def.ret,
    architectures: architectures.map((a, i) => architecture(a, `architectures[${i}]`)),
    rules,
  };
  return { program, flags: loadFlags(profile.flags) };
}

function readProfile(file: string): string {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new Error(code === 'ENOENT' ? 'does not exist' : `cannot be read: ${code}`);
  }
  if (!st.isFile()) throw new Error('is not a regular file');
  if (st.size > MAX_PROFILE_SIZE) throw new Error(`is larger than ${MAX_PROFILE_SIZE} bytes`);
  return fs.readFileSync(file, 'utf8');
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new Error(`not valid JSON: ${errorMessage(err)}`);
  }
}

function compile(program: SeccompProgram): Buffer {
  let bpf: Buffer;
  try {
    bpf = addon().seccompCompile(program);
  } catch (err) {
    throw new Error(`libseccomp: ${errorMessage(err)}`);
  }
  const count = bpf.length / SOCK_FILTER_SIZE;
  if (count > MAX_INSTRUCTIONS) {
    throw new Error(`the filter has ${count} instructions; the kernel takes ${MAX_INSTRUCTIONS}`);
  }
  return bpf;
}

/** Reads, checks and compiles a profile; every error names the file and what is wrong. */
export function loadSeccompProfile(file: string): SeccompConfig {
  try {
    const profile = parseJson(readProfile(file));
    const ignored = Object.keys(isObject(profile) ? profile : {}).filter(
      (k) => !KNOWN_FIELDS.includes(k) && k !== 'listenerPath',
    );
    if (ignored.length > 0) log().warn({ file, ignored }, 'seccomp profile fields ignored');
    const { program, flags } = checkProfile(profile);
    const bpf = compile(program);
    log().debug({ file, rules: program.rules.length, instructions: bpf.length / 8 }, 'seccomp');
    return { filter: bpf.toString('base64'), flags };
  } catch (err) {
    throw usageError(`seccomp profile '${file}': ${errorMessage(err)}`);
  }
}
