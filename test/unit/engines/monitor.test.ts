import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { hasDefaultAction } from '../../../src/engines/monitor';
import { SIGNALS } from '../../../src/native/constants';

describe('signal dispositions', () => {
  it('tells a default SIGTERM from a trapped one and an ignored one', async () => {
    const child = spawn('sh', ['-c', 'trap "" HUP; trap "exit 0" USR1; echo ready; sleep 5'], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    await new Promise((resolve) => child.stdout.once('data', resolve));
    try {
      expect(hasDefaultAction(child.pid!, SIGNALS.SIGTERM)).to.equal(true);
      expect(hasDefaultAction(child.pid!, SIGNALS.SIGHUP)).to.equal(false);
      expect(hasDefaultAction(child.pid!, SIGNALS.SIGUSR1)).to.equal(false);
    } finally {
      child.kill('SIGKILL');
    }
  });
});
