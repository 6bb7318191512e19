import { expect } from 'chai';
import { userNamespacesUnavailable } from '../../../src/common/userns';

describe('user namespaces available?', () => {
  const settings = (values: Record<string, string>) => (name: string) => values[name];

  it('says nothing when they are', () => {
    expect(
      userNamespacesUnavailable(false, settings({ 'user.max_user_namespaces': '100' })),
    ).to.equal(undefined);
  });

  it('names the setting that turns them off, and what an admin changes', () => {
    expect(
      userNamespacesUnavailable(false, settings({ 'user.max_user_namespaces': '0' })),
    ).to.equal(
      'user namespaces are disabled: user.max_user_namespaces is 0 (an admin raises it with sysctl -w user.max_user_namespaces=15000)',
    );
    expect(
      userNamespacesUnavailable(false, settings({ 'kernel.unprivileged_userns_clone': '0' })),
    ).to.match(/kernel\.unprivileged_userns_clone is 0/);
    expect(
      userNamespacesUnavailable(
        false,
        settings({ 'kernel.apparmor_restrict_unprivileged_userns': '1' }),
      ),
    ).to.match(/AppArmor restricts unprivileged user namespaces/);
  });

  it('holds the unprivileged-only switches against users, not root', () => {
    const off = settings({ 'kernel.unprivileged_userns_clone': '0' });
    expect(userNamespacesUnavailable(true, off)).to.equal(undefined);
  });
});
