import { expect } from 'chai';
import * as fs from 'node:fs';
import * as net from 'node:net';
import { readMessages, readMessageSync, writeMessageSync } from '../../../src/common/messages';
import { addon } from '../../../src/native/addon';

describe('stage messages', () => {
  it('round-trips a message with newlines and unicode in its strings', () => {
    const [a, b] = addon().socketpair();
    try {
      const msg = { type: 'start', env: { V: 'a\nb', W: 'é=x "q"' } };
      writeMessageSync(a, msg);
      expect(readMessageSync(b)).to.deep.equal(msg);
    } finally {
      addon().close(a);
      addon().close(b);
    }
  });

  it('reads null at end of file', () => {
    const [a, b] = addon().socketpair();
    addon().close(a);
    expect(readMessageSync(b)).to.equal(null);
    addon().close(b);
  });

  it('splits several messages that arrive in one chunk and one message split in two', async () => {
    const [a, b] = addon().socketpair();
    const got: unknown[] = [];
    const sock = new net.Socket({ fd: b, readable: true, writable: true });
    const done = new Promise<void>((resolve) =>
      readMessages(
        sock,
        (m) => got.push(m),
        () => resolve(),
      ),
    );
    fs.writeSync(a, '{"n":1}\n{"n":2}\n{"n"');
    await new Promise((r) => setTimeout(r, 20));
    fs.writeSync(a, ':3}\n');
    addon().close(a);
    await done;
    expect(got).to.deep.equal([{ n: 1 }, { n: 2 }, { n: 3 }]);
  });

  it('ends with an error on a line that is not JSON', async () => {
    const [a, b] = addon().socketpair();
    const sock = new net.Socket({ fd: b, readable: true, writable: true });
    const done = new Promise<Error | undefined>((resolve) =>
      readMessages(
        sock,
        () => {},
        (err) => resolve(err),
      ),
    );
    fs.writeSync(a, 'not json\n');
    const err = await done;
    addon().close(a);
    sock.destroy();
    expect(err).to.be.instanceOf(SyntaxError);
  });
});
