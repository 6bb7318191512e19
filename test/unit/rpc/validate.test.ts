import { expect } from 'chai';
import { RpcError, toErrorBody } from '../../../src/rpc/errors';
import { shape, Validator } from '../../../src/rpc/validate';

interface Args {
  path: string;
  mode: number;
  root?: string;
  data: string | null;
}

const check: Validator<Args> = shape<Args>({
  path: 'path',
  mode: 'uint',
  root: 'path?',
  data: 'string|null',
});

function refusal(args: unknown): RpcError {
  try {
    check(args);
  } catch (err) {
    expect(err).to.be.instanceOf(RpcError);
    expect((err as RpcError).code).to.equal('EINVAL');
    return err as RpcError;
  }
  throw new Error('expected EINVAL');
}

describe('rpc argument validation', () => {
  it('accepts a map of the declared shape, optional fields absent or present', () => {
    check({ path: '/a', mode: 0o755, data: null });
    check({ path: '/a', mode: 0, root: '/r', data: 'x' });
    check({ path: '/a', mode: 0, root: undefined, data: 'x' });
  });

  it('refuses a relative path naming the field', () => {
    expect(refusal({ path: 'a', mode: 0, data: null }).message).to.contain("'path'");
  });

  it('refuses a missing required field naming it', () => {
    expect(refusal({ path: '/a', data: null }).message).to.contain("'mode'");
  });

  it('refuses null where null is not allowed', () => {
    expect(refusal({ path: '/a', mode: 0, root: null, data: null }).message).to.contain("'root'");
  });

  it('refuses negative and fractional integers', () => {
    refusal({ path: '/a', mode: -1, data: null });
    refusal({ path: '/a', mode: 1.5, data: null });
  });

  it('refuses strings with NUL bytes', () => {
    refusal({ path: '/a\0b', mode: 0, data: null });
  });

  it('refuses an unknown field (a misspelt root must not be ignored)', () => {
    expect(refusal({ path: '/a', mode: 0, data: null, rot: '/r' }).message).to.contain("'rot'");
  });
});

describe('rpc error bodies', () => {
  it('carry a system error as code, syscall and path', () => {
    const err = Object.assign(new Error('x'), { code: 'EPERM', syscall: 'mount', path: '/m' });
    expect(toErrorBody(err)).to.deep.equal({
      code: 'EPERM',
      message: "mount '/m': EPERM",
      op: 'mount',
      path: '/m',
    });
  });

  it('carry anything else as EINTERNAL', () => {
    expect(toErrorBody(new Error('oops')).code).to.equal('EINTERNAL');
  });
});
