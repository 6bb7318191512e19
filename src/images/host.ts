// What the host says about an image file or directory: loop devices already backed by it, and
// the mount options of the file system it lives on.
import * as fs from 'node:fs';

export interface LoopUser {
  device: string;
  readonly: boolean;
  offset: number;
}

function readOr(file: string, fallback: string): string {
  try {
    return fs.readFileSync(file, 'utf8').trim();
  } catch {
    return fallback;
  }
}

/** Loop devices whose backing file is `file` (by real path). */
export function loopUsers(file: string): LoopUser[] {
  const real = fs.realpathSync(file);
  const users: LoopUser[] = [];
  for (const name of fs.readdirSync('/sys/block').filter((n) => n.startsWith('loop'))) {
    const backing = readOr(`/sys/block/${name}/loop/backing_file`, '');
    if (backing === real) {
      const readonly = readOr(`/sys/block/${name}/ro`, '0') === '1';
      const offset = Number(readOr(`/sys/block/${name}/loop/offset`, '0'));
      users.push({ device: `/dev/${name}`, readonly, offset });
    }
  }
  return users;
}

/** mountinfo's octal escapes (\040 for a space) decoded. */
function unescape(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/** The per-mount options of the mount that holds `file` ('rw,nosuid,...'). */
export function mountOptionsOf(file: string): string[] {
  const real = fs.realpathSync(file);
  let best = '';
  let options: string[] = [];
  for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const fields = line.split(' ');
    if (fields.length < 6) continue;
    const point = unescape(fields[4]);
    const inside = point === '/' || real === point || real.startsWith(`${point}/`);
    if (inside && point.length >= best.length) {
      best = point;
      options = fields[5].split(',');
    }
  }
  return options;
}
