// writeSif's data copy, done on a piscina worker in chunks: the bytes and the progress it reports.
import { expect } from 'chai';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CHUNK } from '../../../src/images/copy-worker';
import { DataType, FsType, PartType, readSif } from '../../../src/images/sif';
import { writeSif } from '../../../src/images/sif-write';

function randomFile(file: string, size: number): Buffer {
  const data = crypto.randomBytes(size);
  fs.writeFileSync(file, data);
  return data;
}

/** The bytes of each partition of a SIF file, in descriptor order. */
function partitions(file: string): Buffer[] {
  const fd = fs.openSync(file, 'r');
  try {
    const sif = readSif(file, fd);
    const parts = sif.descriptors.filter((d) => d.dataType === DataType.Partition);
    return parts.map((d) => {
      const buf = Buffer.alloc(d.size);
      fs.readSync(fd, buf, 0, d.size, d.offset);
      return buf;
    });
  } finally {
    fs.closeSync(fd);
  }
}

describe('SIF writer', function () {
  this.timeout(60000);
  let dir: string;

  beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-sif-write-'))));
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('copies a partition larger than one chunk byte for byte', async () => {
    const size = 20 << 20;
    expect(size).to.be.greaterThan(2 * CHUNK);
    const data = randomFile(path.join(dir, 'part.img'), size + 123);
    const out = path.join(dir, 'out.sif');
    await writeSif(out, { file: path.join(dir, 'part.img'), fsType: FsType.Squash, name: 'p' });
    const [copied] = partitions(out);
    expect(copied.length).to.equal(data.length);
    expect(copied.equals(data)).to.equal(true);
  });

  it('copies an overlay partition after the primary one, each at its aligned offset', async () => {
    const primary = randomFile(path.join(dir, 'a.img'), CHUNK + 1);
    const overlay = randomFile(path.join(dir, 'b.img'), 5000);
    const out = path.join(dir, 'out.sif');
    await writeSif(out, { file: path.join(dir, 'a.img'), fsType: FsType.Squash, name: 'a' }, [
      { file: path.join(dir, 'b.img'), fsType: FsType.Ext3, name: 'b' },
    ]);
    const fd = fs.openSync(out, 'r');
    const sif = readSif(out, fd);
    fs.closeSync(fd);
    const parts = sif.descriptors.filter((d) => d.dataType === DataType.Partition);
    expect(parts.map((d) => d.partType)).to.deep.equal([PartType.PrimSys, PartType.Overlay]);
    expect(parts.every((d) => d.offset % 4096 === 0)).to.equal(true);
    const [a, b] = partitions(out);
    expect([a.equals(primary), b.equals(overlay)]).to.deep.equal([true, true]);
  });

  it('reports progress from 0, never decreasing, ending at the total', async () => {
    randomFile(path.join(dir, 'a.img'), 20 << 20);
    randomFile(path.join(dir, 'b.img'), 3 << 20);
    const total = 23 << 20;
    const seen: Array<[number, number]> = [];
    await writeSif(
      path.join(dir, 'out.sif'),
      { file: path.join(dir, 'a.img'), fsType: FsType.Squash, name: 'a' },
      [{ file: path.join(dir, 'b.img'), fsType: FsType.Ext3, name: 'b' }],
      { onProgress: (copied, all) => seen.push([copied, all]) },
    );
    expect(seen[0]).to.deep.equal([0, total]);
    expect(seen[seen.length - 1]).to.deep.equal([total, total]);
    expect(seen.length).to.be.greaterThan(3);
    for (let i = 1; i < seen.length; i++) {
      expect(seen[i][0]).to.be.at.least(seen[i - 1][0]);
      expect(seen[i][1]).to.equal(total);
    }
  });

  it('fails with the code and the file named when the worker cannot read a partition', async () => {
    const file = path.join(dir, 'a-directory');
    fs.mkdirSync(file);
    const out = path.join(dir, 'out.sif');
    const err = await writeSif(out, { file, fsType: FsType.Squash, name: 'd' }).then(
      () => null,
      (e: unknown) => e as { code: string; message: string },
    );
    expect(err?.code).to.equal('EISDIR');
    expect(err?.message).to.contain(`copying '${file}' into '${out}'`);
  });
});
