// Helpers shared by the RPC tests.
import { expect } from 'chai';
import { RpcError } from '../../src/rpc/errors';

/** The RpcError a promise rejects with; fails the test when it resolves. */
export async function rejection(promise: Promise<unknown>): Promise<RpcError> {
  try {
    await promise;
  } catch (err) {
    expect(err).to.be.instanceOf(RpcError);
    return err as RpcError;
  }
  throw new Error('expected a rejection');
}
