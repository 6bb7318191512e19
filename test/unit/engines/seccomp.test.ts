// OCI seccomp profiles: the checks of every field and the compiled filter (libseccomp, no root).
import { expect } from 'chai';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { checkProfile, loadSeccompProfile } from '../../../src/engines/tsrun/seccomp';

const DENY_MOUNTS = {
  defaultAction: 'SCMP_ACT_ALLOW',
  architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86'],
  syscalls: [{ names: ['unshare', 'mount'], action: 'SCMP_ACT_ERRNO', errnoRet: 1 }],
};

function problem(profile: unknown): string {
  try {
    checkProfile(profile);
  } catch (err) {
    return (err as Error).message;
  }
  throw new Error('expected the profile to be refused');
}

describe('seccomp profile checks', () => {
  it('turns each name of an entry into a rule, with libseccomp architecture names', () => {
    const { program, flags } = checkProfile(DENY_MOUNTS);
    expect(program.defaultAction).to.equal('SCMP_ACT_ALLOW');
    expect(program.architectures).to.deep.equal(['x86_64', 'x86']);
    expect(program.rules).to.deep.equal([
      { syscall: 'unshare', action: 'SCMP_ACT_ERRNO', ret: 1, args: [] },
      { syscall: 'mount', action: 'SCMP_ACT_ERRNO', ret: 1, args: [] },
    ]);
    expect(flags).to.equal(0);
  });

  it('returns EPERM when no errnoRet is given, and defaultErrnoRet for the default', () => {
    const { program } = checkProfile({
      defaultAction: 'SCMP_ACT_ERRNO',
      defaultErrnoRet: 38,
      syscalls: [{ names: ['mount'], action: 'SCMP_ACT_ERRNO' }],
    });
    expect(program.defaultRet).to.equal(38);
    expect(program.rules[0].ret).to.equal(1);
  });

  it('leaves out rules that do what the default action does', () => {
    const { program } = checkProfile({
      defaultAction: 'SCMP_ACT_ALLOW',
      syscalls: [{ names: ['read'], action: 'SCMP_ACT_ALLOW' }],
    });
    expect(program.rules).to.deep.equal([]);
  });

  it('makes one rule per comparison when an argument is compared twice', () => {
    const args = [
      { index: 0, value: 1, op: 'SCMP_CMP_EQ' },
      { index: 0, value: 2, op: 'SCMP_CMP_EQ' },
    ];
    const { program } = checkProfile({
      defaultAction: 'SCMP_ACT_ALLOW',
      syscalls: [{ names: ['personality'], action: 'SCMP_ACT_ERRNO', args }],
    });
    expect(program.rules.map((r) => r.args.map((a) => a.value))).to.deep.equal([[1n], [2n]]);
    expect(program.rules[0].args[0].valueTwo).to.equal(0n);
  });

  it('reads the load flags and refuses those tsrun cannot honour', () => {
    const flags = ['SECCOMP_FILTER_FLAG_LOG', 'SECCOMP_FILTER_FLAG_SPEC_ALLOW'];
    expect(checkProfile({ ...DENY_MOUNTS, flags }).flags).to.equal(6);
    expect(problem({ ...DENY_MOUNTS, flags: ['SECCOMP_FILTER_FLAG_NEW_LISTENER'] })).to.equal(
      "flags[0]: 'SECCOMP_FILTER_FLAG_NEW_LISTENER' is not supported",
    );
  });

  it('names the field that is wrong', () => {
    expect(problem([])).to.equal('a profile must be a JSON object');
    expect(problem({ defaultAction: 'SCMP_ACT_ALOW' })).to.equal(
      "defaultAction: unknown action 'SCMP_ACT_ALOW'",
    );
    expect(problem({ defaultAction: 'SCMP_ACT_NOTIFY' })).to.match(/NOTIFY is not supported/);
    expect(problem({ defaultAction: 'SCMP_ACT_ALLOW', defaultErrnoRet: 1 })).to.equal(
      'defaultErrnoRet goes only with SCMP_ACT_ERRNO or SCMP_ACT_TRACE, not SCMP_ACT_ALLOW',
    );
    const call = (entry: object) => problem({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [entry] });
    expect(call({ names: ['mount', 'mountt'], action: 'SCMP_ACT_ERRNO' })).to.equal(
      "syscalls[0].names[1]: unknown system call 'mountt'",
    );
    expect(call({ names: [], action: 'SCMP_ACT_ERRNO' })).to.match(/names must be a non-empty/);
    expect(
      call({
        names: ['mount'],
        action: 'SCMP_ACT_KILL',
        args: [{ index: 6, value: 0, op: 'SCMP_CMP_EQ' }],
      }),
    ).to.equal('syscalls[0].args[0].index must be at most 5');
    expect(
      call({ names: ['mount'], action: 'SCMP_ACT_KILL', args: [{ index: 0, value: 0, op: 'EQ' }] }),
    ).to.equal("syscalls[0].args[0].op: unknown operator 'EQ'");
    expect(problem({ ...DENY_MOUNTS, architectures: ['SCMP_ARCH_Z80'] })).to.equal(
      "architectures[0]: unknown architecture 'SCMP_ARCH_Z80'",
    );
  });
});

describe('seccomp profile files', () => {
  let dir: string;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-seccomp-'));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  function write(name: string, text: string): string {
    const file = path.join(dir, name);
    fs.writeFileSync(file, text);
    return file;
  }

  it('compiles a profile into BPF instructions of 8 bytes each', () => {
    const compiled = loadSeccompProfile(write('ok.json', JSON.stringify(DENY_MOUNTS)));
    const bytes = Buffer.from(compiled.filter, 'base64');
    expect(bytes.length).to.be.above(0);
    expect(bytes.length % 8).to.equal(0);
    expect(compiled.flags).to.equal(0);
  });

  it('names the file in every refusal', () => {
    const file = write('bad.json', '{"defaultAction": ');
    expect(() => loadSeccompProfile(file)).to.throw(
      new RegExp(`^seccomp profile '${file}': not valid JSON: `),
    );
    expect(() => loadSeccompProfile(path.join(dir, 'none.json'))).to.throw(
      `seccomp profile '${dir}/none.json': does not exist`,
    );
    expect(() => loadSeccompProfile(dir)).to.throw(
      `seccomp profile '${dir}': is not a regular file`,
    );
  });
});
