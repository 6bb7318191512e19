// libseccomp through the addon: names, compiling, and the filter execve loads on its own thread.
// Loading runs in a spawned Node process, never in mocha's.
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import type { SeccompProgram } from '../../../src/native/addon';
import { addonModule, caught, native } from './helpers';

const DENY_UNSHARE: SeccompProgram = {
  defaultAction: 'SCMP_ACT_ALLOW',
  defaultRet: 0,
  architectures: [],
  rules: [{ syscall: 'unshare', action: 'SCMP_ACT_ERRNO', ret: 1, args: [] }],
};

/** Runs `body` in a new Node process with `n` the addon and `filter` the compiled DENY_UNSHARE. */
function inChild(body: string): { stdout: string; stderr: string } {
  const filter = native.seccompCompile(DENY_UNSHARE).toString('base64');
  const script = `const n = require(${JSON.stringify(addonModule)}).addon();
    const filter = { filter: Buffer.from('${filter}', 'base64'), flags: 0 };
    ${body}`;
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' });
  return { stdout: r.stdout, stderr: r.stderr };
}

describe('native seccomp', () => {
  it('knows system call and architecture names', () => {
    expect(native.seccompSyscallKnown('unshare')).to.equal(true);
    expect(native.seccompSyscallKnown('arm_fadvise64_64')).to.equal(true);
    expect(native.seccompSyscallKnown('no_such_call')).to.equal(false);
    expect(native.seccompArchKnown('x86_64')).to.equal(true);
    expect(native.seccompArchKnown('SCMP_ARCH_X86_64')).to.equal(false);
  });

  it('compiles a program into whole BPF instructions', () => {
    const bpf = native.seccompCompile(DENY_UNSHARE);
    expect(bpf.length % 8).to.equal(0);
    expect(bpf.length / 8).to.be.within(4, 4096);
  });

  it('names the system call libseccomp does not know', () => {
    const program = { ...DENY_UNSHARE, rules: [{ ...DENY_UNSHARE.rules[0], syscall: 'nope' }] };
    expect(caught(() => native.seccompCompile(program))).to.include({
      code: 'EINVAL',
      syscall: 'seccomp_syscall_resolve_name',
      path: 'nope',
    });
  });

  it('refuses an unknown action name with a TypeError', () => {
    const program = { ...DENY_UNSHARE, defaultAction: 'SCMP_ACT_MAYBE' };
    expect(() => native.seccompCompile(program)).to.throw(TypeError, /unknown name/);
  });

  it('execve refuses a filter that is not whole instructions or has other flags', () => {
    const r = inChild(`for (const bad of [{ filter: Buffer.alloc(12), flags: 0 },
        { filter: Buffer.alloc(8), flags: 1 }]) {
      try { n.execve('/bin/true', ['true'], [], bad); } catch (e) { console.log(e.message); }
    }`);
    expect(r.stdout).to.match(/1 to 4096 BPF instructions\n.*only LOG and SPEC_ALLOW\n$/);
  });

  it('execve loads the filter into the program it runs', () => {
    const r = inChild(`n.execve('/bin/sh', ['sh', '-c',
      'grep ^Seccomp: /proc/self/status; unshare -U true || echo refused'], [], filter);`);
    expect(r.stdout).to.match(/^Seccomp:\t2\n/);
    expect(r.stdout).to.match(/refused\n$/);
  });

  it('filters only the thread that called execve when the exec fails', () => {
    const r = inChild(`try { n.execve('/nonexistent', ['x'], [], filter); } catch (e) {
        const fs = require('fs');
        const mode = (t) => fs.readFileSync('/proc/self/task/' + t + '/status', 'utf8')
          .match(/Seccomp:\\s*(\\d)/)[1];
        const others = fs.readdirSync('/proc/self/task').filter((t) => t !== String(process.pid));
        console.log(e.code, e.syscall, mode(process.pid), others.length > 0, others.map(mode).join(''));
      }`);
    const [code, syscall, main, hasThreads, others] = r.stdout.trim().split(' ');
    expect([code, syscall, main, hasThreads]).to.deep.equal(['ENOENT', 'execve', '2', 'true']);
    expect(others).to.match(/^0+$/);
  });
});
