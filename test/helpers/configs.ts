// Engine configs for unit tests.
import type { TsrunEngineConfig, UserInfo } from '../../src/engines/tsrun/config';

export const ALICE: UserInfo = {
  uid: 1000,
  gid: 1000,
  name: 'alice',
  gecos: 'Alice',
  home: '/home/alice',
  shell: '/bin/bash',
  groups: [
    { gid: 1000, name: 'alice' },
    { gid: 27, name: 'sudo' },
  ],
};

/** A tsrun engine config as stage 1 leaves it, with `over` applied. */
export function tsrunConfig(over: Partial<TsrunEngineConfig> = {}): TsrunEngineConfig {
  return {
    image: '/img',
    action: 'exec',
    args: ['true'],
    env: { A: 'b' },
    cwd: '/work/p',
    binds: [],
    writable: false,
    contain: false,
    pidNamespace: false,
    utsNamespace: false,
    ipcNamespace: false,
    user: ALICE,
    sessionDir: '/s',
    ...over,
  };
}
