#!/usr/bin/env node
// The tsrun CLI (the wrapper): parses the command line, builds the engine config and hands it to
// the starter, which runs in this same process (see src/cli/starter.ts). Runs on the host, as the
// user.
import * as fs from 'node:fs';
import { Command, CommanderError, Option } from 'commander';
import { errorMessage } from '../common/errors';
import { writeStderr } from '../common/log';
import type { Action } from '../engines/tsrun/config';
import { buildEngineConfig, ContainerOptions } from './config';
import { addCapabilityCommand } from './capability';
import { addPrivilegeOptions } from './privilege-options';
import { runStarter, setLogLevel } from './starter';

const VERSION = (require('../../../package.json') as { version: string }).version;

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

function containerCommand(program: Command, name: string, summary: string): Command {
  const cmd = program
    .command(name)
    .description(summary)
    .passThroughOptions()
    .option(
      '-B, --bind <spec>',
      'bind a host path: src[:dst[:ro|rw]] (repeat or comma-separate)',
      collect,
    )
    .option('-w, --writable', 'mount a sandbox directory or ext3 image read-write')
    .option('--writable-tmpfs', 'let the container write to a tmpfs layer that vanishes with it')
    .option(
      '-o, --overlay <path[:ro]>',
      'overlay a directory or ext3 image: writes go to its upper layer (repeat; :ro stacks it)',
      collect,
    )
    .option('-c, --contain', 'minimal /dev, and empty /tmp, /var/tmp and home in the session dir')
    .option('-C, --containall', 'contain file systems, pid, ipc and environment (-c -p -i -e)')
    .option('--no-home', 'do not mount the home directory')
    .option('-H, --home <src[:dst]>', 'bind src as the home directory, at dst (default src)')
    .option('-W, --workdir <dir>', 'host directory for /tmp, /var/tmp and home with --contain')
    .option(
      '-S, --scratch <dir>',
      'an empty directory at dir inside (repeat; in --workdir if given)',
      collect,
    )
    .option('--dns <ip,...>', 'name servers for /etc/resolv.conf, comma-separated')
    .option(
      '-n, --net',
      'new network namespace with only the loopback interface (no other network yet)',
    )
    .option(
      '-p, --pid',
      'run in a new pid namespace, under an init that reaps and forwards signals',
    )
    .option('--no-init', 'with --pid, run the payload itself as pid 1')
    .option('-u, --userns', 'run in a user namespace, as a user without root does (root too)')
    .option(
      '--fakeroot',
      'be root inside a user namespace, mapped to your uid and gid (plus your /etc/subuid ranges)',
    )
    .option('-i, --ipc', 'run in a new ipc namespace')
    .option('--uts', 'run in a new uts namespace')
    .option('--hostname <name>', 'set the hostname (implies --uts)')
    .option('--pwd <dir>', 'working directory inside the container')
    .option('--apply-cgroups <file>', 'apply the memory, cpu and pids limits of a JSON file (root)')
    .option('-e, --cleanenv', 'pass only TERM, LANG and proxy variables of the host environment')
    .option('--env <NAME=VALUE>', "set a variable inside, over the image's (repeat)", collect)
    .option('--env-file <file>', 'set the variables of a file of NAME=VALUE lines inside');
  return addPrivilegeOptions(cmd);
}

function run(action: Action, image: string, args: string[], opts: ContainerOptions): void {
  if (image.startsWith('instance://')) {
    const { joinConfig } = require('./instance') as typeof import('./instance');
    return runStarter(joinConfig(action, image, args, opts));
  }
  runStarter(buildEngineConfig(action, image, args, opts));
}

function buildProgram(): Command {
  const program = new Command('tsrun')
    .description('Run programs in container images, the way Singularity does')
    .enablePositionalOptions()
    .addOption(new Option('-d, --debug', 'print debug records of every stage'))
    .addOption(new Option('-v, --verbose', 'print verbose records (mounts, namespaces, calls)'))
    .addOption(new Option('-q, --quiet', 'print errors only'))
    .addOption(new Option('--log-format <format>', 'log record format').choices(['pretty', 'json']))
    .hook('preSubcommand', (cmd) => setLogLevel(cmd.opts()))
    .configureOutput({
      outputError: (text, write) => write(`tsrun: ${text.replace(/^error: /, '')}`),
    })
    .exitOverride();

  containerCommand(program, 'exec', 'run a command inside a container')
    .usage('[options] IMAGE COMMAND [ARGS...]')
    .argument('<image>')
    .argument('<command>')
    .argument('[args...]')
    .action((image: string, cmd: string, args: string[], opts: ContainerOptions) =>
      run('exec', image, [cmd, ...args], opts),
    );
  containerCommand(program, 'run', "run the image's runscript")
    .usage('[options] IMAGE [ARGS...]')
    .argument('<image>')
    .argument('[args...]')
    .action((image: string, args: string[], opts: ContainerOptions) =>
      run('run', image, args, opts),
    );
  containerCommand(program, 'shell', 'run a shell inside a container')
    .usage('[options] IMAGE')
    .argument('<image>')
    .action((image: string, opts: ContainerOptions) => run('shell', image, [], opts));
  program
    .command('inspect')
    .description("print an image's labels, runscript, environment and SIF descriptors")
    .usage('[options] IMAGE')
    .option('--json', 'print one JSON object')
    .argument('<image>')
    .action((image: string, opts: { json?: boolean }) => {
      const { inspectConfig } = require('./config') as typeof import('./config');
      runStarter(inspectConfig(image, opts.json === true));
    });
  program
    .command('build')
    .description('build a SIF file from a sandbox directory or image, or unpack one (--sandbox)')
    .usage('[options] OUTPUT SOURCE')
    .option('-s, --sandbox', 'unpack SOURCE into the sandbox directory OUTPUT')
    .option('-F, --force', 'replace OUTPUT if it exists')
    .argument('<output>')
    .argument('<source>')
    .action((out: string, source: string, opts: { sandbox?: boolean; force?: boolean }) => {
      const { build } = require('./build') as typeof import('./build');
      return build(out, source, opts);
    });
  addCapabilityCommand(program);
  const { addInstanceCommand } = require('./instance') as typeof import('./instance');
  addInstanceCommand(program, containerCommand);
  program
    .command('version')
    .description('print the version')
    .action(() => {
      fs.writeSync(1, `tsrun version ${VERSION}\n`);
    });
  for (const cmd of program.commands) cmd.exitOverride();
  return program;
}

/** The command line, without the '+' that bin/tsrun puts before each argument (see there). */
function commandLine(): string[] {
  const args = process.argv.slice(2);
  if (process.env.TSRUN_ARGV_PLUS !== '1') return args;
  delete process.env.TSRUN_ARGV_PLUS;
  return args.map((a) => (a.startsWith('+') ? a.slice(1) : a));
}

async function main(): Promise<void> {
  try {
    await buildProgram().parseAsync(commandLine(), { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) process.exit(err.exitCode === 0 ? 0 : 255);
    writeStderr(`tsrun: ${errorMessage(err)}\n`);
    process.exit((err as { exitCode?: number }).exitCode ?? 255);
  }
}

void main();
