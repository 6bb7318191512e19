// LoopDevice through the RPC server: attach an image file, mount it, and the device goes away
// with the server's mount namespace.
import { expect } from 'chai';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CLONE, MS } from '../../src/native/constants';
import { rejection } from '../helpers/rpc';
import { holdLoop0 } from '../helpers/run';
import { missingRequirement, startServer } from './harness';

function loopsOf(file: string): string {
  return execFileSync('losetup', ['-j', file], { encoding: 'utf8' });
}

describe('tsrun RPC method LoopDevice', function () {
  let dir: string;
  let image: string;

  before(function () {
    const missing =
      missingRequirement() ??
      (spawnSync('mksquashfs', ['-version']).status === 0 ? undefined : 'mksquashfs');
    if (missing !== undefined) {
      console.log(`      skipped: needs ${missing}`);
      this.skip();
    }
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-loop-'));
    fs.mkdirSync(path.join(dir, 'content'));
    fs.writeFileSync(path.join(dir, 'content', 'hello'), 'from squashfs');
    image = path.join(dir, 'image.sqfs');
    execFileSync('mksquashfs', [path.join(dir, 'content'), image, '-noappend', '-quiet']);
    fs.mkdirSync(path.join(dir, 'mnt'));
  });
  after(() => {
    if (dir !== undefined) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('attaches a file read-only, mounts it, and detaches when the server is gone', async () => {
    const server = await startServer(CLONE.NEWNS);
    const c = server.client;
    const rprivate = { source: null, target: '/', fstype: null, data: null };
    await c.call('Mount', { ...rprivate, flags: MS.REC | MS.PRIVATE });
    const args = { path: image, offset: 0, size: 0, readonly: true };
    const { device } = await c.call<{ device: string }>('LoopDevice', args);
    expect(device).to.match(/^\/dev\/loop\d+$/);
    expect(loopsOf(image)).to.contain(device);
    const target = path.join(dir, 'mnt');
    const mount = { source: device, target, fstype: 'squashfs', data: null };
    await c.call('Mount', { ...mount, flags: MS.RDONLY });
    const read = await c.call<Uint8Array>('ReadFile', { path: `${target}/hello`, maxSize: 100 });
    expect(Buffer.from(read).toString()).to.equal('from squashfs');
    expect(fs.readdirSync(target), 'the host sees nothing mounted').to.deep.equal([]);
    await c.close();
    expect(await server.exited()).to.deep.equal({ code: 0, signal: null });
    for (let i = 0; i < 50 && loopsOf(image) !== ''; i++)
      await new Promise((r) => setTimeout(r, 20));
    expect(loopsOf(image)).to.equal('');
  });

  it('answers a missing file with ENOENT naming it', async () => {
    const server = await startServer(CLONE.NEWNS);
    const missing = path.join(dir, 'missing.sqfs');
    const args = { path: missing, offset: 0, size: 0, readonly: true };
    const err = await rejection(server.client.call('LoopDevice', args));
    expect(err.code).to.equal('ENOENT');
    expect(err.message).to.contain(missing);
    await server.client.close();
    await server.exited();
  });

  it('shares a read-only device with `shared`, and never for a read-write attachment', async () => {
    const server = await startServer(CLONE.NEWNS);
    const c = server.client;
    const args = { path: image, offset: 0, size: 0, readonly: true };
    const first = await c.call<{ device: string; shared: boolean }>('LoopDevice', args);
    expect(first.shared).to.equal(false);
    const again = await c.call<{ device: string; shared: boolean }>('LoopDevice', {
      ...args,
      shared: true,
    });
    expect(again).to.deep.equal({ device: first.device, shared: true });
    const other = await c.call<{ device: string; shared: boolean }>('LoopDevice', {
      ...args,
      offset: 4096,
      shared: true,
    });
    expect(other.shared, 'another offset is other bytes').to.equal(false);
    expect(other.device).to.not.equal(first.device);
    const unshared = await c.call<{ device: string }>('LoopDevice', args);
    expect(unshared.device, 'not shared unless asked').to.not.equal(first.device);
    const rw = { ...args, readonly: false, shared: true };
    const writer = await c.call<{ device: string; shared: boolean }>('LoopDevice', rw);
    expect(writer.shared).to.equal(false);
    expect(loopsOf(image).trim().split('\n')).to.have.length(4);
    await c.close();
    await server.exited();
    for (let i = 0; i < 50 && loopsOf(image) !== ''; i++)
      await new Promise((r) => setTimeout(r, 20));
    expect(loopsOf(image)).to.equal('');
  });

  it('refuses a device numbered at or above `maxDevices` with ENOSPC', async () => {
    const release = holdLoop0(image);
    const server = await startServer(CLONE.NEWNS);
    try {
      const args = { path: image, offset: 0, size: 0, readonly: true, maxDevices: 1 };
      const err = await rejection(server.client.call('LoopDevice', args));
      expect(err.code).to.equal('ENOSPC');
      expect(err.message).to.contain('max loop devices = 1');
    } finally {
      await server.client.close();
      await server.exited();
      release();
    }
  });
});
