// The container's /etc/passwd and /etc/group: the image's files with the calling user (and its
// groups) added when the image does not have them. Pure text functions.
import type { UserInfo } from './config';

function entries(text: string): string[][] {
  return text
    .split('\n')
    .filter((l) => l.trim() !== '' && !l.startsWith('#'))
    .map((l) => l.split(':'));
}

function withNewline(text: string): string {
  return text === '' || text.endsWith('\n') ? text : `${text}\n`;
}

/** The image's passwd with the user's entry appended when no entry has the user's uid. */
export function makePasswd(image: string, user: UserInfo): string {
  const present = entries(image).some((f) => f[2] === String(user.uid));
  if (present) return withNewline(image);
  const line = [user.name, 'x', user.uid, user.gid, user.gecos, user.home, user.shell].join(':');
  return `${withNewline(image)}${line}\n`;
}

/**
 * The image's group file with each of the user's groups that it lacks appended (the user listed
 * as a member), and the user added to the member list of groups it has by gid.
 */
export function makeGroup(image: string, user: UserInfo): string {
  const lines = withNewline(image).split('\n');
  const seen = new Set<number>();
  const out = lines.map((line) => {
    const f = line.split(':');
    if (f.length < 4 || line.startsWith('#')) return line;
    const gid = Number(f[2]);
    if (!user.groups.some((g) => g.gid === gid) || seen.has(gid)) return line;
    seen.add(gid);
    const members = f[3] === '' ? [] : f[3].split(',');
    if (gid !== user.gid && !members.includes(user.name)) members.push(user.name);
    return [f[0], f[1], f[2], members.join(',')].join(':');
  });
  let text = out.join('\n');
  for (const g of user.groups) {
    if (seen.has(g.gid)) continue;
    seen.add(g.gid);
    const members = g.gid === user.gid ? '' : user.name;
    text = `${withNewline(text)}${g.name}:x:${g.gid}:${members}\n`;
  }
  return withNewline(text);
}

/** /etc/resolv.conf for --dns: one nameserver line per server, in order. */
export function makeResolvConf(servers: string[]): string {
  return servers.map((s) => `nameserver ${s}\n`).join('');
}
