// Whether this machine gives user namespaces, and if not, why, naming the setting an admin would
// change. Used by stage 1 before it asks for one, and by the master when the kernel refuses one.
import * as fs from 'node:fs';

/** A sysctl's value, or undefined when this kernel has no such setting. */
export function readSysctl(name: string): string | undefined {
  try {
    return fs.readFileSync(`/proc/sys/${name.replace(/\./g, '/')}`, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/**
 * Why this machine gives no user namespaces to this caller, naming the setting an admin would
 * change; undefined when it does.
 */
export function userNamespacesUnavailable(
  root: boolean,
  sysctl: (name: string) => string | undefined = readSysctl,
): string | undefined {
  if (!fs.existsSync('/proc/self/ns/user')) {
    return 'this kernel has no user namespaces (CONFIG_USER_NS)';
  }
  if (sysctl('user.max_user_namespaces') === '0') {
    return 'user namespaces are disabled: user.max_user_namespaces is 0 (an admin raises it with sysctl -w user.max_user_namespaces=15000)';
  }
  if (!root && sysctl('kernel.unprivileged_userns_clone') === '0') {
    return 'unprivileged user namespaces are disabled: kernel.unprivileged_userns_clone is 0 (an admin sets it to 1 with sysctl)';
  }
  if (!root && sysctl('kernel.apparmor_restrict_unprivileged_userns') === '1') {
    return 'AppArmor restricts unprivileged user namespaces: kernel.apparmor_restrict_unprivileged_userns is 1 (an admin sets it to 0, or gives tsrun an AppArmor profile that allows userns)';
  }
  return undefined;
}
