import { expect } from 'chai';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { detectImage } from '../../../src/images/detect';
import {
  DataType,
  FsType,
  PartType,
  primaryPartition,
  readSif,
  SifError,
} from '../../../src/images/sif';
import { SIF_FIXTURE } from '../../helpers/run';

function withFile<T>(bytes: Buffer, fn: (file: string, fd: number) => T): T {
  const file = path.join(os.tmpdir(), `tsrun-sif-${process.pid}-${Math.random()}`);
  fs.writeFileSync(file, bytes);
  const fd = fs.openSync(file, 'r');
  try {
    return fn(file, fd);
  } finally {
    fs.closeSync(fd);
    fs.rmSync(file);
  }
}

describe('SIF reader', function () {
  let sif: Buffer;

  before(function () {
    if (!fs.existsSync(SIF_FIXTURE)) {
      console.log(`      skipped: ${SIF_FIXTURE} is missing (the shared fixtures)`);
      this.skip();
    }
    sif = fs.readFileSync(SIF_FIXTURE);
  });

  it('reads the header and descriptors of a SIF file written by Singularity 3.1', () => {
    const parsed = withFile(sif, (file, fd) => readSif(file, fd));
    expect(parsed.header).to.include({ version: '01', arch: '02', descriptorsTotal: 48 });
    expect(parsed.descriptors.map((d) => d.dataType)).to.deep.equal([
      DataType.Deffile,
      DataType.Partition,
    ]);
    const part = primaryPartition(parsed);
    expect(part).to.include({ fsType: FsType.Squash, partType: PartType.PrimSys, offset: 36864 });
    expect(sif.readUInt32LE(part.offset)).to.equal(0x73717368);
  });

  it('finds the squashfs partition of the SIF file by content', () => {
    const source = withFile(sif, (file) => detectImage(file));
    expect(source).to.include({ format: 'sif', fstype: 'squashfs', offset: 36864, size: 1044480 });
  });

  it('refuses a truncated file, naming it', () => {
    const head = sif.subarray(0, 100);
    expect(() => withFile(head, (file, fd) => readSif(file, fd))).to.throw(SifError, /truncated/);
  });

  it('refuses a descriptor that points past the end of the file', () => {
    const bad = Buffer.from(sif);
    bad.writeBigInt64LE(BigInt(sif.length), 4096 + 585 + 17); // the partition's offset
    expect(() => withFile(bad, (file, fd) => readSif(file, fd))).to.throw(
      SifError,
      /descriptor 2 points past the end of the file/,
    );
  });

  it('refuses a descriptor table that lies outside the file', () => {
    const bad = Buffer.from(sif);
    bad.writeBigInt64LE(BigInt(sif.length - 10), 96);
    expect(() => withFile(bad, (file, fd) => readSif(file, fd))).to.throw(SifError, /outside/);
  });

  it('refuses a negative size and an absurd descriptor count', () => {
    const negative = Buffer.from(sif);
    negative.writeBigInt64LE(-1n, 4096 + 585 + 25);
    expect(() => withFile(negative, (file, fd) => readSif(file, fd))).to.throw(/out of range/);
    const many = Buffer.from(sif);
    many.writeBigInt64LE(1n << 40n, 88);
    expect(() => withFile(many, (file, fd) => readSif(file, fd))).to.throw(/too many/);
  });

  it('throws only its own error for damaged headers and tables (1000 random damages)', () => {
    let seed = 42;
    const random = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff);
    const region = 4096 + 2 * 585; // the header and the descriptors in use
    const headerAndTable = sif.subarray(0, region);
    let refused = 0;
    withFile(sif, (file) => {
      const out = fs.openSync(file, 'r+');
      for (let i = 0; i < 1000; i++) {
        const bad = Buffer.from(headerAndTable);
        for (let n = random() % 8; n >= 0; n--) {
          const at = random() % 2 === 0 ? random() % 128 : 4096 + (random() % (2 * 585));
          bad[at] = random() & 0xff;
        }
        fs.writeSync(out, bad, 0, bad.length, 0);
        try {
          detectImage(file);
        } catch (err) {
          expect(err, String(err)).to.satisfy(
            (e: { code?: string }) => e instanceof SifError || e.code === 'EIMAGE',
          );
          refused++;
        }
      }
      fs.closeSync(out);
    });
    expect(refused).to.be.above(0);
  });
});

describe('image detection', () => {
  let dir: string;

  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-detect-'));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('knows a directory, and names a file that is no image with what it holds', () => {
    expect(detectImage(dir).format).to.equal('sandbox');
    const text = path.join(dir, 'notes.txt');
    fs.writeFileSync(text, 'hello world, not an image');
    expect(() => detectImage(text)).to.throw(/not a SIF, squashfs or ext3 image \(found text/);
    const empty = path.join(dir, 'empty');
    fs.writeFileSync(empty, '');
    expect(() => detectImage(empty)).to.throw(/found an empty file/);
  });

  it('refuses a squashfs file with a bad superblock', () => {
    const bad = Buffer.alloc(4096);
    bad.writeUInt32LE(0x73717368, 0);
    bad.writeUInt32LE(12345, 12); // block size
    bad.writeUInt16LE(4, 28);
    const file = path.join(dir, 'bad.sqfs');
    fs.writeFileSync(file, bad);
    expect(() => detectImage(file)).to.throw(/bad squashfs superblock: block size 12345/);
  });

  it('knows an ext3 file by its superblock magic', () => {
    const ext = Buffer.alloc(4096);
    ext.writeUInt16LE(0xef53, 1024 + 56);
    const file = path.join(dir, 'fs.img');
    fs.writeFileSync(file, ext);
    expect(detectImage(file)).to.include({ format: 'ext3', fstype: 'ext3' });
  });
});
