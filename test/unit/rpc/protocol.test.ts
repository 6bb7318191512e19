import { expect } from 'chai';
import { RpcError } from '../../../src/rpc/errors';
import {
  encodeFrame,
  FrameDecoder,
  MAX_FRAME,
  parseRequest,
  parseResponse,
  Request,
} from '../../../src/rpc/protocol';

function drain(decoder: FrameDecoder): unknown[] {
  return [...decoder.frames()];
}

function header(length: number): Buffer {
  const buf = Buffer.alloc(4);
  buf.writeUInt32BE(length, 0);
  return buf;
}

function expectRpcError(fn: () => unknown, code: string): RpcError {
  try {
    fn();
  } catch (err) {
    expect(err).to.be.instanceOf(RpcError);
    expect((err as RpcError).code).to.equal(code);
    return err as RpcError;
  }
  throw new Error(`expected an RpcError ${code}`);
}

const request: Request = {
  id: 7,
  method: 'Mount',
  args: { source: null, target: '/mnt', flags: 0x4000, data: Buffer.from([1, 2, 3]) },
};

describe('rpc protocol framing', () => {
  it('decodes what it encodes', () => {
    const decoder = new FrameDecoder();
    decoder.push(encodeFrame(request));
    expect(drain(decoder)).to.deep.equal([request]);
    expect(decoder.pending).to.equal(0);
  });

  it('writes a 4-byte big-endian length before the body', () => {
    const frame = encodeFrame(request);
    expect(frame.readUInt32BE(0)).to.equal(frame.length - 4);
  });

  it('reassembles a frame split into one-byte chunks', () => {
    const decoder = new FrameDecoder();
    const frame = encodeFrame(request);
    const seen: unknown[] = [];
    for (const byte of frame) {
      decoder.push(Buffer.from([byte]));
      seen.push(...drain(decoder));
    }
    expect(seen).to.deep.equal([request]);
  });

  it('yields every frame of a chunk, in order, and keeps a trailing partial one', () => {
    const decoder = new FrameDecoder();
    const frames = [1, 2, 3].map((id) => encodeFrame({ ...request, id }));
    const fourth = encodeFrame({ ...request, id: 4 });
    decoder.push(Buffer.concat([...frames, fourth.subarray(0, 6)]));
    expect(drain(decoder).map((m) => (m as Request).id)).to.deep.equal([1, 2, 3]);
    decoder.push(fourth.subarray(6));
    expect(drain(decoder).map((m) => (m as Request).id)).to.deep.equal([4]);
  });

  it('refuses a frame longer than MAX_FRAME as soon as its header arrives', () => {
    const decoder = new FrameDecoder();
    decoder.push(header(MAX_FRAME + 1));
    expectRpcError(() => drain(decoder), 'EPROTO');
  });

  it('stays failed after a malformed frame', () => {
    const decoder = new FrameDecoder();
    decoder.push(header(0));
    expectRpcError(() => drain(decoder), 'EPROTO');
    decoder.push(encodeFrame(request));
    expectRpcError(() => drain(decoder), 'EPROTO');
  });

  it('yields the frames before a malformed one, then throws EPROTO', () => {
    const decoder = new FrameDecoder();
    decoder.push(Buffer.concat([encodeFrame(request), header(2), Buffer.from([0x92, 0x01])]));
    const frames = decoder.frames();
    expect(frames.next().value).to.deep.equal(request);
    expectRpcError(() => frames.next(), 'EPROTO');
  });

  it('refuses a body with bytes after its msgpack value', () => {
    const decoder = new FrameDecoder();
    decoder.push(Buffer.concat([header(2), Buffer.from([0x01, 0x02])]));
    expectRpcError(() => drain(decoder), 'EPROTO');
  });

  it('refuses to encode a message over MAX_FRAME with EMSGSIZE', () => {
    const big = { id: 1, result: Buffer.alloc(MAX_FRAME) };
    expectRpcError(() => encodeFrame(big), 'EMSGSIZE');
  });
});

describe('rpc protocol messages', () => {
  it('accepts a request with a positive id, a method name and an argument map', () => {
    expect(parseRequest({ id: 1, method: 'X', args: {} })).to.deep.equal({
      id: 1,
      method: 'X',
      args: {},
    });
  });

  it('keeps a chain flag only when it is true', () => {
    expect(parseRequest({ id: 1, method: 'X', args: {}, chain: true })).to.include({ chain: true });
    expect(parseRequest({ id: 1, method: 'X', args: {}, chain: false })).not.to.have.property(
      'chain',
    );
  });

  for (const [what, message] of [
    ['a non-map', [1, 'X', {}]],
    ['id 0', { id: 0, method: 'X', args: {} }],
    ['a fractional id', { id: 1.5, method: 'X', args: {} }],
    ['no method', { id: 1, args: {} }],
    ['args that are not a map', { id: 1, method: 'X', args: [] }],
    ['a chain flag that is not a boolean', { id: 1, method: 'X', args: {}, chain: 1 }],
  ] as const) {
    it(`refuses a request with ${what} as EPROTO`, () => {
      expectRpcError(() => parseRequest(message), 'EPROTO');
    });
  }

  it('accepts result and error responses', () => {
    expect(parseResponse({ id: 3, result: null })).to.deep.equal({ id: 3, result: null });
    const error = { code: 'EPERM', message: 'mount: EPERM', op: 'mount', path: '/x' };
    expect(parseResponse({ id: 3, error })).to.deep.equal({ id: 3, error });
  });

  it('refuses a response without result or a well-formed error', () => {
    expectRpcError(() => parseResponse({ id: 3 }), 'EPROTO');
    expectRpcError(() => parseResponse({ id: 3, error: { code: 1 } }), 'EPROTO');
  });
});
