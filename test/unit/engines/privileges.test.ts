// The privilege request (flags -> engine config) and stage 1's capability decision, without root.
import { expect } from 'chai';
import { CapabilityInput, decideCapabilities } from '../../../src/engines/tsrun/prepare-privileges';
import {
  checkRootOnly,
  emptyPrivilegeRequest,
  parseCapabilityList,
  parsePrivilegeRequest,
  parseSecurityOptions,
  PrivilegeRequest,
  privilegeRequest,
} from '../../../src/engines/tsrun/privileges';
import { CAPABILITIES } from '../../../src/native/constants';

/** Root's bounding set on a machine that lacks CAP_SYS_RESOURCE. */
const BOUNDING = CAPABILITIES.filter((c) => c !== 'CAP_SYS_RESOURCE');

function decide(
  request: Partial<PrivilegeRequest>,
  over: Partial<CapabilityInput> = {},
): ReturnType<typeof decideCapabilities> {
  return decideCapabilities({
    request: { ...emptyPrivilegeRequest(), ...request },
    callerIsRoot: true,
    targetIsRoot: true,
    bounding: BOUNDING,
    granted: [],
    who: "user 'alice'",
    ...over,
  });
}

describe('capability names', () => {
  it('takes names with or without CAP_, in any case, comma-separated or repeated', () => {
    expect(parseCapabilityList(['net_raw,CAP_chown', 'Sys_Admin'], '--add-caps')).to.deep.equal([
      'CAP_NET_RAW',
      'CAP_CHOWN',
      'CAP_SYS_ADMIN',
    ]);
  });

  it('keeps ALL as a word and drops duplicates and empty items', () => {
    expect(parseCapabilityList(['all,,net_raw,CAP_NET_RAW'], '--drop-caps')).to.deep.equal([
      'ALL',
      'CAP_NET_RAW',
    ]);
  });

  it('refuses an unknown capability, naming it and the flag', () => {
    expect(() => parseCapabilityList(['net_raw,cap_fly'], '--add-caps')).to.throw(
      "--add-caps: unknown capability 'cap_fly'",
    );
  });
});

describe('--security values', () => {
  it('reads seccomp, uid and gid, repeated or comma-separated', () => {
    expect(parseSecurityOptions(['seccomp:/p.json', 'uid:1000,gid:1000:27'])).to.deep.equal({
      seccompProfile: '/p.json',
      uid: 1000,
      gids: [1000, 27],
    });
  });

  it('keeps commas inside a profile path', () => {
    expect(parseSecurityOptions(['seccomp:/a,b.json,uid:0'])).to.deep.equal({
      seccompProfile: '/a,b.json',
      uid: 0,
    });
  });

  it('refuses a kind given twice, an unknown kind, a bad id and apparmor', () => {
    expect(() => parseSecurityOptions(['uid:1', 'uid:2'])).to.throw('uid is given twice');
    expect(() => parseSecurityOptions(['seccom:/p'])).to.throw("unknown kind 'seccom'");
    expect(() => parseSecurityOptions(['constructor:1'])).to.throw("unknown kind 'constructor'");
    expect(() => parseSecurityOptions(['gid:1:x'])).to.throw("'x' is not a uid or gid");
    expect(() => parseSecurityOptions(['uid:'])).to.throw('expected uid:VALUE');
    expect(() => parseSecurityOptions(['apparmor:x'])).to.throw('apparmor is not supported');
  });
});

describe('privilege request', () => {
  it('reads the flags as the option parser gives them (--no-privs is privs: false)', () => {
    expect(privilegeRequest({ privs: false, addCaps: ['net_raw'] })).to.deep.equal({
      keepPrivs: false,
      noPrivs: true,
      addCaps: ['CAP_NET_RAW'],
      dropCaps: [],
    });
  });

  it('refuses --keep-privs with --no-privs', () => {
    expect(() => privilegeRequest({ keepPrivs: true, privs: false })).to.throw(
      /exclude each other/,
    );
  });

  it('refuses uid, gid and --keep-privs for a non-root caller', () => {
    const request = { ...emptyPrivilegeRequest(), gids: [0] };
    expect(() => checkRootOnly(request, 1000)).to.throw('--security uid and gid are for root only');
    expect(() => checkRootOnly({ ...emptyPrivilegeRequest(), keepPrivs: true }, 1000)).to.throw(
      '--keep-privs is for root only',
    );
    expect(() => checkRootOnly(request, 0)).to.not.throw();
  });

  it('checks the request in an engine config, and defaults to nothing asked', () => {
    expect(parsePrivilegeRequest(undefined)).to.deep.equal(emptyPrivilegeRequest());
    expect(parsePrivilegeRequest({ addCaps: ['chown'] }).addCaps).to.deep.equal(['CAP_CHOWN']);
    expect(() => parsePrivilegeRequest({ addCaps: ['nope'] })).to.throw(/unknown capability/);
    expect(() => parsePrivilegeRequest({ uid: -1 })).to.throw(/privileges.uid must be a uid/);
    expect(() => parsePrivilegeRequest({ gids: [] })).to.throw(/privileges.gids/);
    expect(() => parsePrivilegeRequest({ keepPrivs: 1 })).to.throw(/keepPrivs must be a boolean/);
  });
});

describe('capability decision', () => {
  it('gives root its whole bounding set by default, in the bounding set only, with no ambient', () => {
    const { caps, outside } = decide({});
    expect(caps.bounding).to.deep.equal(BOUNDING);
    expect(caps.effective).to.deep.equal(BOUNDING);
    expect(caps.permitted).to.deep.equal(BOUNDING);
    expect(caps.inheritable).to.deep.equal([]);
    expect(caps.ambient).to.deep.equal([]);
    expect(outside).to.deep.equal([]);
  });

  it('gives the same with --keep-privs', () => {
    expect(decide({ keepPrivs: true }).caps).to.deep.equal(decide({}).caps);
  });

  it("follows the admin's `root default capabilities`, which --keep-privs overrides", () => {
    expect(decide({}, { rootDefault: 'no' }).caps.bounding).to.deep.equal([]);
    const file = decide({}, { rootDefault: 'file', granted: ['CAP_NET_RAW', 'CAP_CHOWN'] });
    expect(file.caps.bounding).to.deep.equal(['CAP_CHOWN', 'CAP_NET_RAW']);
    const kept = decide({ keepPrivs: true }, { rootDefault: 'no' });
    expect(kept.caps.bounding).to.deep.equal(BOUNDING);
    const added = decide({ addCaps: ['CAP_KILL'] }, { rootDefault: 'no' });
    expect(added.caps.bounding).to.deep.equal(['CAP_KILL']);
  });

  it('gives root nothing with --no-privs, and only the added ones with --add-caps', () => {
    expect(decide({ noPrivs: true }).caps.bounding).to.deep.equal([]);
    const { caps } = decide({ noPrivs: true, addCaps: ['CAP_NET_RAW', 'CAP_CHOWN'] });
    expect(caps.bounding).to.deep.equal(['CAP_CHOWN', 'CAP_NET_RAW']);
  });

  it('drops --drop-caps, and everything with ALL', () => {
    expect(decide({ dropCaps: ['CAP_NET_RAW'] }).caps.bounding).to.not.include('CAP_NET_RAW');
    expect(decide({ dropCaps: ['CAP_NET_RAW'] }).caps.bounding).to.have.length(BOUNDING.length - 1);
    expect(decide({ dropCaps: ['ALL'] }).caps.effective).to.deep.equal([]);
  });

  it('never asks for a capability outside the bounding set, and names those asked by name', () => {
    const { caps, outside } = decide({ noPrivs: true, addCaps: ['ALL', 'CAP_SYS_RESOURCE'] });
    expect(caps.bounding).to.deep.equal(BOUNDING);
    expect(outside).to.deep.equal(['CAP_SYS_RESOURCE']);
  });

  it('gives a payload of another uid nothing by default, and carries what it gets as ambient', () => {
    expect(decide({}, { targetIsRoot: false }).caps.effective).to.deep.equal([]);
    const { caps } = decide({ addCaps: ['CAP_NET_RAW'] }, { targetIsRoot: false });
    expect(caps).to.deep.equal({
      bounding: ['CAP_NET_RAW'],
      effective: ['CAP_NET_RAW'],
      permitted: ['CAP_NET_RAW'],
      inheritable: ['CAP_NET_RAW'],
      ambient: ['CAP_NET_RAW'],
    });
    expect(decide({ keepPrivs: true }, { targetIsRoot: false }).caps.ambient).to.deep.equal(
      BOUNDING,
    );
  });

  it('gives a non-root caller only the added capabilities that capability.json grants', () => {
    const user = { callerIsRoot: false, targetIsRoot: false, granted: ['CAP_NET_RAW'] };
    expect(decide({}, user).caps.ambient).to.deep.equal([]);
    expect(decide({ addCaps: ['CAP_NET_RAW'] }, user).caps.ambient).to.deep.equal(['CAP_NET_RAW']);
    expect(decide({ addCaps: ['ALL'] }, user).caps.ambient).to.deep.equal(['CAP_NET_RAW']);
    expect(() => decide({ addCaps: ['CAP_CHOWN'] }, user)).to.throw(
      "--add-caps: CAP_CHOWN is not granted to user 'alice'",
    );
    expect(() => decide({ keepPrivs: true }, user)).to.throw('--keep-privs is for root only');
  });
});
