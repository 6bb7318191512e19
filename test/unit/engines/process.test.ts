import { expect } from 'chai';
import { hostEnvironment } from '../../../src/cli/config';
import { buildEnvironment, CONTAINER_PATH } from '../../../src/engines/tsrun/process';
import { tsrunConfig } from '../../helpers/configs';

describe('payload environment', () => {
  it("replaces the host's PATH and HOME and names the container", () => {
    const env = buildEnvironment(
      tsrunConfig({ image: '/imgs/app', env: { PATH: '/host/bin', HOME: '/x', KEEP: 'a=b\nc' } }),
    );
    expect(env).to.include({
      PATH: CONTAINER_PATH,
      HOME: '/home/alice',
      KEEP: 'a=b\nc',
      TSRUN_CONTAINER: '/imgs/app',
      TSRUN_NAME: 'app',
      SINGULARITY_CONTAINER: '/imgs/app',
      SINGULARITY_NAME: 'app',
    });
  });

  it('sets a prompt for shell only', () => {
    expect(buildEnvironment(tsrunConfig({ action: 'shell' })).PS1).to.equal('tsrun> ');
    expect(buildEnvironment(tsrunConfig()).PS1).to.equal(undefined);
  });

  it('gives back NODE_EXTRA_CA_CERTS that the launcher moved aside', () => {
    const env = hostEnvironment({ TSRUN_HOST_NODE_EXTRA_CA_CERTS: '/ca.pem', A: 'b' });
    expect(env).to.deep.equal({ NODE_EXTRA_CA_CERTS: '/ca.pem', A: 'b' });
  });
});
