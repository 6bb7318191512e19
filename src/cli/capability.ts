// `tsrun capability add|drop|list`: the capabilities an administrator lets users and groups add
// with --add-caps, kept in etc/capability.json of the install as Singularity's `capability`
// command keeps them. Root only. Runs on the host, in the wrapper.
import * as fs from 'node:fs';
import type { Command } from 'commander';
import { usageError } from '../common/errors';

type Op = 'add' | 'drop' | 'list';

interface TargetFlags {
  user?: string;
  group?: string;
}

interface Target {
  kind: 'users' | 'groups';
  name: string;
}

/** --user or --group: exactly one for add and drop, at most one for list. */
function targetOf(op: Op, flags: TargetFlags): Target | undefined {
  if (flags.user !== undefined && flags.group !== undefined) {
    throw usageError(`capability ${op}: give --user or --group, not both`);
  }
  if (flags.user !== undefined) return { kind: 'users', name: flags.user };
  if (flags.group !== undefined) return { kind: 'groups', name: flags.group };
  if (op === 'list') return undefined;
  throw usageError(`capability ${op}: name a --user or a --group`);
}

/** Whether the host's /etc/passwd or /etc/group has an entry of that name. */
function hostHas(target: Target): boolean {
  const file = target.kind === 'users' ? '/etc/passwd' : '/etc/group';
  const lines = fs.readFileSync(file, 'utf8').split('\n');
  return lines.some((line) => line.split(':')[0] === target.name);
}

function label(target: Target): string {
  return `${target.name} [${target.kind === 'users' ? 'user' : 'group'}]`;
}

function line(caps: string[]): string {
  return caps.length > 0 ? ` ${caps.join(',')}` : '';
}

function list(target: Target | undefined): string {
  const { capabilityFile, readGrants } =
    require('../config/capability-file') as typeof import('../config/capability-file');
  const grants = readGrants(capabilityFile());
  const targets: Target[] =
    target !== undefined
      ? [target]
      : (['users', 'groups'] as const).flatMap((kind) =>
          Object.keys(grants[kind])
            .sort()
            .map((name) => ({ kind, name })),
        );
  return targets.map((t) => `${label(t)}:${line(grants[t.kind][t.name] ?? [])}\n`).join('');
}

function change(op: 'add' | 'drop', target: Target, capsText: string): void {
  const { capabilityFile, updateGrants } =
    require('../config/capability-file') as typeof import('../config/capability-file');
  const { expandCapabilities, parseCapabilityList } =
    require('../engines/tsrun/privileges') as typeof import('../engines/tsrun/privileges');
  const caps = expandCapabilities(parseCapabilityList([capsText], `capability ${op}`));
  if (caps.length === 0) throw usageError(`capability ${op}: name at least one capability`);
  if (op === 'add' && !hostHas(target)) {
    const what = target.kind === 'users' ? 'user' : 'group';
    throw usageError(`capability add: ${what} '${target.name}' does not exist on this host`);
  }
  updateGrants(capabilityFile(), (grants) => {
    const held = grants[target.kind][target.name] ?? [];
    const next =
      op === 'add'
        ? [...held, ...caps.filter((c) => !held.includes(c))]
        : held.filter((c) => !caps.includes(c));
    if (next.length > 0) grants[target.kind][target.name] = next;
    else delete grants[target.kind][target.name];
  });
}

function manage(op: Op, capsText: string | undefined, flags: TargetFlags): void {
  if (process.getuid!() !== 0) throw usageError(`capability ${op}: only root manages capabilities`);
  const target = targetOf(op, flags);
  if (op === 'list') fs.writeSync(1, list(target));
  else change(op, target!, capsText ?? '');
}

export function addCapabilityCommand(program: Command): void {
  const cmd = program
    .command('capability')
    .description('manage the capabilities users and groups may add with --add-caps (root only)');
  for (const op of ['add', 'drop'] as const) {
    cmd
      .command(op)
      .description(`${op === 'add' ? 'grant' : 'withdraw'} capabilities (comma-separated, ALL)`)
      .usage('(--user NAME | --group NAME) CAPS')
      .option('-u, --user <name>', 'a user of the host')
      .option('-g, --group <name>', 'a group of the host')
      .argument('<caps>')
      .action((caps: string, flags: TargetFlags) => manage(op, caps, flags));
  }
  cmd
    .command('list')
    .description('print the capabilities granted to a user, a group, or everyone')
    .usage('[--user NAME | --group NAME]')
    .option('-u, --user <name>', 'a user')
    .option('-g, --group <name>', 'a group')
    .action((flags: TargetFlags) => manage('list', undefined, flags));
}
