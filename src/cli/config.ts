// Building the engine config the wrapper hands to tsrun-starter, from the parsed command line.
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { usageError } from '../common/errors';
import { detectImage } from '../images/detect';
import { readSif } from '../images/sif';
import type { CommonConfig } from '../engines/config';
import { isEnvName, parseEnvFile } from '../engines/tsrun/environment';
import {
  Action,
  BindSpec,
  parseBindSpec,
  parseHomeSpec,
  parseOverlaySpec,
  TsrunEngineConfig,
} from '../engines/tsrun/config';
import { PrivilegeFlags, privilegeRequest } from '../engines/tsrun/privileges';

export interface ContainerOptions extends PrivilegeFlags {
  bind?: string[];
  writable?: boolean;
  writableTmpfs?: boolean;
  overlay?: string[];
  contain?: boolean;
  pid?: boolean;
  ipc?: boolean;
  uts?: boolean;
  hostname?: string;
  pwd?: string;
  containall?: boolean;
  userns?: boolean;
  fakeroot?: boolean;
  init?: boolean;
  home?: string | boolean;
  workdir?: string;
  scratch?: string[];
  dns?: string;
  net?: boolean;
  applyCgroups?: string;
  cleanenv?: boolean;
  env?: string[];
  envFile?: string;
}

/** -B values, repeated or comma-separated. */
export function parseBinds(values: string[] = []): BindSpec[] {
  return values
    .flatMap((v) => v.split(','))
    .map((spec) => {
      if (spec === '') throw usageError(`--bind: empty bind spec in '${values.join(',')}'`);
      const bind = parseBindSpec(spec);
      return { ...bind, source: path.resolve(bind.source) };
    });
}

/** Variables bin/tsrun moves aside from tsrun's own Node processes, given back here. */
const SET_ASIDE = ['NODE_EXTRA_CA_CERTS', 'NODE_OPTIONS'];

/** The host environment for the payload: as the user has it, minus the launcher's own changes. */
export function hostEnvironment(env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined) out[k] = v;
  delete out.TSRUN_ARGV_PLUS;
  for (const name of SET_ASIDE) {
    const saved = out[`TSRUN_HOST_${name}`];
    delete out[`TSRUN_HOST_${name}`];
    if (saved !== undefined) out[name] = saved;
  }
  return out;
}

/** 16 random hex digits (from /dev/urandom: loading node:crypto costs more than the run needs). */
export function newContainerID(): string {
  const fd = fs.openSync('/dev/urandom', 'r');
  try {
    const buf = Buffer.alloc(8);
    fs.readSync(fd, buf, 0, 8, null);
    return buf.toString('hex');
  } finally {
    fs.closeSync(fd);
  }
}

/** --dns: comma-separated IPv4 or IPv6 addresses. */
export function parseDns(value: string | undefined): string[] | undefined {
  if (value === undefined) return undefined;
  const servers = value.split(',').map((s) => s.trim());
  for (const server of servers) {
    if (net.isIP(server) === 0) throw usageError(`--dns: '${server}' is not an IP address`);
  }
  return servers;
}

/** --home: commander gives `false` for --no-home, a string for -H, true for neither. */
function homeOptions(home: string | boolean | undefined): Partial<TsrunEngineConfig> {
  if (home === false) return { noHome: true };
  if (typeof home !== 'string') return {};
  const spec = parseHomeSpec(home);
  return { homeBind: { ...spec, source: path.resolve(spec.source) } };
}

/** --env-file, then --env over it: the variables set inside. */
export function requestedEnvironment(
  values: string[] = [],
  envFile?: string,
): Record<string, string> | undefined {
  if (values.length === 0 && envFile === undefined) return undefined;
  const out: Record<string, string> = {};
  if (envFile !== undefined) {
    let text: string;
    try {
      text = fs.readFileSync(envFile, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw usageError(`--env-file '${envFile}': ${code === 'ENOENT' ? 'does not exist' : code}`);
    }
    Object.assign(out, parseEnvFile(text, envFile));
  }
  for (const value of values) {
    const eq = value.indexOf('=');
    const name = eq < 0 ? value : value.slice(0, eq);
    if (eq < 0 || !isEnvName(name)) {
      throw usageError(`--env '${value}': expected NAME=VALUE with NAME a variable name`);
    }
    out[name] = value.slice(eq + 1);
  }
  for (const name of Object.keys(out)) {
    if (name.startsWith('__TSRUN_')) throw usageError(`--env: '${name}' is reserved for tsrun`);
  }
  return out;
}

/**
 * docker://, library://, oras://, shub:// and other URIs name images that tsrun would have to
 * fetch and convert: it runs local images only, and says so instead of looking for a file.
 */
export function refuseImageURI(image: string): void {
  const uri = /^([a-z][a-z0-9+.-]*):\/\//i.exec(image);
  if (uri !== null) {
    throw usageError(
      `'${image}': ${uri[1]}:// images are not supported; tsrun runs local images (SIF, squashfs and ext3 files, sandbox directories)`,
    );
  }
}

function checkPwd(pwd: string | undefined): void {
  if (pwd !== undefined && !pwd.startsWith('/')) {
    throw usageError(`--pwd '${pwd}' must be an absolute path`);
  }
}

export function buildEngineConfig(
  action: Action,
  image: string,
  args: string[],
  opts: ContainerOptions,
): CommonConfig {
  checkPwd(opts.pwd);
  refuseImageURI(image);
  const engineConfig: TsrunEngineConfig = {
    image: path.resolve(image),
    action,
    args,
    env: hostEnvironment(),
    cleanEnv: (opts.cleanenv ?? false) || opts.containall === true,
    envSet: requestedEnvironment(opts.env, opts.envFile),
    cwd: process.cwd(),
    pwd: opts.pwd,
    binds: parseBinds(opts.bind),
    writable: opts.writable ?? false,
    writableTmpfs: opts.writableTmpfs ?? false,
    overlays: (opts.overlay ?? []).map((spec) => {
      const overlay = parseOverlaySpec(spec);
      return { ...overlay, path: path.resolve(overlay.path) };
    }),
    contain: (opts.contain ?? false) || opts.containall === true,
    ...homeOptions(opts.home),
    workdir: opts.workdir === undefined ? undefined : path.resolve(opts.workdir),
    scratch: opts.scratch?.flatMap((v) => v.split(',')),
    dns: parseDns(opts.dns),
    netNamespace: opts.net ?? false,
    noInit: opts.init === false,
    userns: opts.userns ?? false,
    fakeroot: opts.fakeroot ?? false,
    pidNamespace: (opts.pid ?? false) || opts.containall === true,
    utsNamespace: (opts.uts ?? false) || opts.hostname !== undefined,
    ipcNamespace: (opts.ipc ?? false) || opts.containall === true,
    hostname: opts.hostname,
    privileges: privilegeRequest(opts),
    applyCgroups: opts.applyCgroups === undefined ? undefined : path.resolve(opts.applyCgroups),
  };
  return { engineName: 'tsrun', containerID: newContainerID(), engineConfig };
}

/** The engine config of `tsrun inspect`: a container that prints the image's metadata. */
export function inspectConfig(image: string, json: boolean): CommonConfig {
  const config = buildEngineConfig('inspect', image, [], {});
  const cfg = config.engineConfig as TsrunEngineConfig;
  cfg.inspect = { json, sif: readSifInfo(cfg.image) };
  return config;
}

/**
 * A SIF file's header and descriptors, read on the host; undefined for other images and for any
 * image stage 1 will refuse (it names what is wrong).
 */
function readSifInfo(image: string): unknown {
  try {
    if (detectImage(image).format !== 'sif') return undefined;
    const fd = fs.openSync(image, 'r');
    try {
      const { header, descriptors } = readSif(image, fd);
      return { header, descriptors };
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return undefined;
  }
}
