// RpcClient and serve() over a real Unix socket in a temporary directory, with a toy method table.
import { expect } from 'chai';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { RpcClient } from '../../../src/rpc/client';
import { encodeFrame, FrameDecoder, MAX_FRAME, parseResponse } from '../../../src/rpc/protocol';
import { methodsOf, registerMethods, serveRuntimeEngineRequests } from '../../../src/rpc/registry';
import { MethodTable, serve } from '../../../src/rpc/server';
import { shape } from '../../../src/rpc/validate';
import { rejection } from '../../helpers/rpc';

let active = 0;
let maxActive = 0;
const started: string[] = [];

const toy: MethodTable = {
  Echo: { validate: shape<{ value: string }>({ value: 'string' }), handler: ({ value }) => value },
  Sleep: {
    validate: shape<{ ms: number; tag: string }>({ ms: 'uint', tag: 'string' }),
    handler: async ({ ms, tag }: { ms: number; tag: string }) => {
      started.push(tag);
      maxActive = Math.max(maxActive, ++active);
      await sleep(ms);
      active--;
      return tag;
    },
  },
  Fail: {
    validate: shape<object>({}),
    handler: () => {
      throw Object.assign(new Error('no'), { code: 'EPERM', syscall: 'mount', path: '/x' });
    },
  },
  Big: { validate: shape<object>({}), handler: () => Buffer.alloc(MAX_FRAME) },
  Nothing: { validate: shape<object>({}), handler: () => undefined },
};

interface Harness {
  path: string;
  conns: net.Socket[];
  served: Promise<unknown>[]; // one per connection: undefined or the error serve() rejected with
  close(): Promise<void>;
}

async function listen(): Promise<Harness> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-rpc-'));
  const sock = path.join(dir, 'rpc.sock');
  const conns: net.Socket[] = [];
  const served: Promise<unknown>[] = [];
  const server = net.createServer({ allowHalfOpen: true }, (conn) => {
    conns.push(conn);
    served.push(
      serve(conn, toy).then(
        () => undefined,
        (err: unknown) => err,
      ),
    );
  });
  await new Promise<void>((resolve) => server.listen(sock, resolve));
  const close = async () => {
    for (const conn of conns) conn.destroy();
    await new Promise((resolve) => server.close(resolve));
    fs.rmSync(dir, { recursive: true, force: true });
  };
  return { path: sock, conns, served, close };
}

/** Connects a raw socket and collects the responses it receives until the server closes it. */
function rawExchange(sockPath: string, bytes: Buffer): Promise<unknown[]> {
  return new Promise((resolve, reject) => {
    const decoder = new FrameDecoder();
    const got: unknown[] = [];
    const conn = net.connect(sockPath, () => conn.write(bytes));
    conn.on('data', (chunk: Buffer) => {
      decoder.push(chunk);
      for (const m of decoder.frames()) got.push(parseResponse(m));
    });
    conn.on('error', reject);
    conn.on('close', () => resolve(got));
  });
}

describe('rpc client and server', () => {
  let h: Harness;
  let client: RpcClient;

  beforeEach(async () => {
    h = await listen();
    client = await RpcClient.connect(h.path);
    active = maxActive = 0;
    started.length = 0;
  });
  afterEach(async () => {
    await client.close();
    await h.close();
  });

  it('answers pipelined calls in the order they were sent, one handler at a time', async () => {
    const order: string[] = [];
    const calls = [
      client.call<string>('Sleep', { ms: 30, tag: 'a' }),
      client.call<string>('Sleep', { ms: 1, tag: 'b' }),
      client.call<string>('Echo', { value: 'c' }),
    ];
    for (const c of calls) void c.then((tag) => order.push(tag));
    expect(client.inFlight).to.equal(3);
    expect(await Promise.all(calls)).to.deep.equal(['a', 'b', 'c']);
    expect(order).to.deep.equal(['a', 'b', 'c']);
    expect(started).to.deep.equal(['a', 'b']);
    expect(maxActive).to.equal(1);
  });

  it('does not run a chained call after a failed one, and runs an unchained one', async () => {
    const failed = rejection(client.call('Fail', {}));
    const chained = rejection(client.call('Sleep', { ms: 1, tag: 'chained' }, { chain: true }));
    const chainedAgain = rejection(client.call('Echo', { value: 'x' }, { chain: true }));
    const unchained = client.call<string>('Sleep', { ms: 1, tag: 'free' });
    const afterSuccess = client.call<string>('Echo', { value: 'y' }, { chain: true });
    expect((await failed).code).to.equal('EPERM');
    expect((await chained).code).to.equal('ECANCELED');
    expect((await chainedAgain).code).to.equal('ECANCELED');
    expect(await unchained).to.equal('free');
    expect(await afterSuccess).to.equal('y');
    expect(started).to.deep.equal(['free']);
  });

  it('answers an unknown method with ENOSYS', async () => {
    const err = await rejection(client.call('Nope', {}));
    expect(err.code).to.equal('ENOSYS');
    expect(err.message).to.contain('Nope');
  });

  it('answers a prototype property name as an unknown method', async () => {
    expect((await rejection(client.call('toString', {}))).code).to.equal('ENOSYS');
  });

  it('answers bad arguments with EINVAL naming the field', async () => {
    const err = await rejection(client.call('Echo', { value: 3 }));
    expect(err.code).to.equal('EINVAL');
    expect(err.message).to.contain("'value'");
  });

  it("answers a handler's system error with its code, syscall and path", async () => {
    const err = await rejection(client.call('Fail', {}));
    expect([err.code, err.op, err.path]).to.deep.equal(['EPERM', 'mount', '/x']);
  });

  it('answers a result too large for a frame with EMSGSIZE and keeps serving', async () => {
    expect((await rejection(client.call('Big', {}))).code).to.equal('EMSGSIZE');
    expect(await client.call('Echo', { value: 'still here' })).to.equal('still here');
  });

  it('answers null for a handler that returns nothing', async () => {
    expect(await client.call('Nothing', {})).to.equal(null);
  });

  it('answers calls already sent before close() resolves', async () => {
    const call = client.call('Sleep', { ms: 20, tag: 'late' });
    await client.close();
    expect(await call).to.equal('late');
    expect(await h.served[0]).to.equal(undefined);
  });

  it('rejects calls made after close() with ECONNRESET', async () => {
    await client.close();
    expect((await rejection(client.call('Echo', { value: 'x' }))).code).to.equal('ECONNRESET');
  });

  it('rejects pending calls with ECONNRESET when the server closes the connection', async () => {
    const calls = [
      client.call('Sleep', { ms: 200, tag: 'a' }),
      client.call('Echo', { value: 'b' }),
    ];
    await sleep(20);
    h.conns[0].destroy();
    for (const call of calls) {
      const err = await rejection(call);
      expect(err.code).to.equal('ECONNRESET');
    }
  });

  it('survives a client that disappears in the middle of a request', async () => {
    const raw = net.connect(h.path);
    await new Promise((resolve) => raw.once('connect', resolve));
    raw.write(encodeFrame({ id: 1, method: 'Sleep', args: { ms: 30, tag: 'gone' } }));
    raw.write(encodeFrame({ id: 2, method: 'Echo', args: { value: 'x' } }).subarray(0, 5));
    await sleep(5);
    raw.destroy();
    expect(await h.served[1]).to.equal(undefined);
    expect(started).to.deep.equal(['gone']);
    expect(await client.call('Echo', { value: 'alive' })).to.equal('alive');
  });

  it('answers a malformed frame with an id-0 EPROTO error, after the requests before it', async () => {
    const bytes = Buffer.concat([
      encodeFrame({ id: 1, method: 'Echo', args: { value: 'ok' } }),
      Buffer.from([0, 0, 0, 2, 0x92, 0x01]),
      encodeFrame({ id: 2, method: 'Echo', args: {} }),
    ]);
    const got = await rawExchange(h.path, bytes);
    expect(got).to.have.length(2);
    expect(got[0]).to.deep.equal({ id: 1, result: 'ok' });
    expect(got[1]).to.have.property('id', 0);
    expect(got[1]).to.have.nested.property('error.code', 'EPROTO');
    expect(await h.served[1]).to.have.property('code', 'EPROTO');
  });

  it('answers an oversized frame header with EPROTO and closes', async () => {
    const got = await rawExchange(h.path, Buffer.from([0xff, 0xff, 0xff, 0xff]));
    expect(got).to.deep.equal([{ id: 0, error: (got[0] as { error: object }).error }]);
    expect(got[0]).to.have.nested.property('error.code', 'EPROTO');
  });

  it('rejects pending calls with the EPROTO error when the server refuses the stream', async () => {
    const answered = client.call('Echo', { value: 'before' });
    (client as unknown as { conn: net.Socket }).conn.write(Buffer.from([0, 0, 0, 0]));
    const pending = client.call('Echo', { value: 'after' });
    expect(await answered).to.equal('before');
    expect((await rejection(pending)).code).to.equal('EPROTO');
    expect((await rejection(client.call('Echo', { value: 'x' }))).code).to.equal('EPROTO');
  });
});

describe('rpc engine registry', () => {
  it('refuses to serve an engine with no methods registered', () => {
    const conn = new net.Socket();
    expect(() => serveRuntimeEngineRequests('no-such-engine', conn)).to.throw(/no-such-engine/);
  });

  it('serves the table registered for an engine', async () => {
    registerMethods('toy', toy);
    expect(methodsOf('toy')).to.equal(toy);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-rpc-'));
    const sock = path.join(dir, 's');
    const server = net.createServer((c) => void serveRuntimeEngineRequests('toy', c));
    await new Promise<void>((resolve) => server.listen(sock, resolve));
    const client = await RpcClient.connect(sock);
    expect(await client.call('Echo', { value: 'via registry' })).to.equal('via registry');
    await client.close();
    await new Promise((resolve) => server.close(resolve));
    fs.rmSync(dir, { recursive: true, force: true });
  });
});
