// The privilege flags of exec, run and shell: capabilities as Singularity 3.1 spells them, and
// --security. Parsed into a PrivilegeRequest by src/engines/tsrun/privileges.ts.
import type { Command } from 'commander';

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

export function addPrivilegeOptions(cmd: Command): Command {
  return cmd
    .option('--keep-privs', 'let root keep all of its capabilities (root only; the default)')
    .option('--no-privs', "drop all of root's capabilities in the container")
    .option(
      '--add-caps <caps>',
      'add capabilities, comma-separated: CAP_NET_RAW, net_raw or ALL (repeat)',
      collect,
    )
    .option('--drop-caps <caps>', 'drop capabilities, comma-separated, or ALL (repeat)', collect)
    .option(
      '--security <spec>',
      'seccomp:PROFILE.json (OCI format), uid:N, gid:N[:N...] (uid and gid: root only)',
      collect,
    );
}
