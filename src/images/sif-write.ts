// Writing SIF files the way Singularity 3.x lays them out: a 128-byte global header, a table of 48
// descriptors of 585 bytes at offset 4096, data from offset 32768, partitions aligned to 4096
// bytes. Descriptor ids count from 1; every object is in the default group (0xf0000001); links
// are unused (0); times are Unix seconds. The partitions' data is copied by a worker thread (see
// copy-worker.ts) of a piscina pool that exists only while a SIF file is written.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { MessageChannel } from 'node:worker_threads';
import type { Piscina } from 'piscina';
import { TsrunError } from '../common/errors';
import type { CopyProgress, CopyRequest, CopyResult } from './copy-worker';
import { DataType, FsType, PartType, SIF_MAGIC } from './sif';

const COPY_WORKER = path.join(__dirname, 'copy-worker.js');

const LAUNCH = '#!/usr/bin/env run-singularity\n';
const DESCRIPTORS = 48;
const DESCRIPTOR_SIZE = 585;
const DESCRIPTORS_OFFSET = 4096;
const DATA_OFFSET = 32768;
const PARTITION_ALIGN = 4096;
const DEFAULT_GROUP = 0xf0000001;

/** SIF architecture codes by Node's process.arch. */
const ARCH: Record<string, string> = {
  ia32: '01',
  x64: '02',
  arm: '03',
  arm64: '04',
  ppc64: '05',
  s390x: '07',
  mips: '09',
  riscv64: '14',
};

export interface WriteOptions {
  /**
   * Called as the partitions' data is copied, with the bytes copied so far and in all: from 0,
   * never decreasing, last with copied equal to total.
   */
  onProgress?: (copied: number, total: number) => void;
}

export interface PartitionSource {
  /** A squashfs or ext3 file, copied whole into the SIF file. */
  file: string;
  fsType: (typeof FsType)['Squash' | 'Ext3'];
  name: string;
}

function align(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}

function uuidV4(): Buffer {
  const id = Buffer.alloc(16);
  const fd = fs.openSync('/dev/urandom', 'r');
  fs.readSync(fd, id, 0, 16, null);
  fs.closeSync(fd);
  id[6] = (id[6] & 0x0f) | 0x40;
  id[8] = (id[8] & 0x3f) | 0x80;
  return id;
}

function header(now: number, used: number, dataLength: number, arch: string): Buffer {
  const h = Buffer.alloc(128);
  h.write(LAUNCH, 0, 'latin1');
  h.write(SIF_MAGIC, 32, 'latin1');
  h.write('01', 42, 'latin1');
  h.write(arch, 45, 'latin1');
  uuidV4().copy(h, 48);
  const i64 = [
    now,
    now,
    DESCRIPTORS - used,
    DESCRIPTORS,
    DESCRIPTORS_OFFSET,
    DESCRIPTORS * DESCRIPTOR_SIZE,
    DATA_OFFSET,
    dataLength,
  ];
  i64.forEach((v, i) => h.writeBigInt64LE(BigInt(v), 64 + 8 * i));
  return h;
}

interface DescriptorFields {
  id: number;
  partType: number;
  offset: number;
  size: number;
  storeSize: number;
  now: number;
  name: string;
  fsType: number;
  arch: string;
}

/** A partition's file and where it goes in the SIF file. */
type Placed = Omit<DescriptorFields, 'now' | 'arch'> & { file: string };

function partitionDescriptor(d: DescriptorFields): Buffer {
  const b = Buffer.alloc(DESCRIPTOR_SIZE);
  b.writeInt32LE(DataType.Partition, 0);
  b.writeUInt8(1, 4); // used
  b.writeUInt32LE(d.id, 5);
  b.writeUInt32LE(DEFAULT_GROUP, 9);
  b.writeUInt32LE(0, 13); // link: none
  const i64 = [d.offset, d.size, d.storeSize, d.now, d.now, 0, 0]; // offsets, times, uid, gid
  i64.forEach((v, i) => b.writeBigInt64LE(BigInt(v), 17 + 8 * i));
  b.write(d.name.slice(0, 127), 73, 'latin1');
  b.writeInt32LE(d.fsType, 201);
  b.writeInt32LE(d.partType, 205);
  b.write(d.arch, 209, 'latin1');
  return b;
}

/**
 * Writes `out` as a SIF file whose primary system partition is `part`'s file, followed by the
 * writable overlay partitions given (ext3 files), each aligned to 4096 bytes.
 */
export async function writeSif(
  out: string,
  part: PartitionSource,
  overlays: PartitionSource[] = [],
  options: WriteOptions = {},
): Promise<void> {
  const arch = ARCH[process.arch] ?? '00';
  const now = Math.floor(Date.now() / 1000);
  const parts = [
    { ...part, partType: PartType.PrimSys },
    ...overlays.map((o) => ({ ...o, partType: PartType.Overlay })),
  ];
  let end = DATA_OFFSET;
  const placed: Placed[] = [];
  for (const [i, p] of parts.entries()) {
    const size = (await fs.promises.stat(p.file)).size;
    const offset = align(end, PARTITION_ALIGN);
    placed.push({ ...p, offset, size, storeSize: offset - end + size, id: i + 1 });
    end = offset + size;
  }
  const handle = await fs.promises.open(out, 'w', 0o755);
  try {
    await handle.write(header(now, placed.length, end - DATA_OFFSET, arch), 0, 128, 0);
    for (const [i, p] of placed.entries()) {
      const descriptor = partitionDescriptor({ ...p, now, arch });
      await handle.write(descriptor, 0, DESCRIPTOR_SIZE, DESCRIPTORS_OFFSET + i * DESCRIPTOR_SIZE);
    }
  } finally {
    await handle.close();
  }
  await copyPartitions(out, placed, options.onProgress ?? (() => undefined));
}

/** Copies each partition's file into `out` at its offset, one after the other, on a worker. */
async function copyPartitions(
  out: string,
  placed: Placed[],
  onProgress: (copied: number, total: number) => void,
): Promise<void> {
  const total = placed.reduce((sum, p) => sum + p.size, 0);
  onProgress(0, total);
  if (total === 0) return;
  const { Piscina } = require('piscina') as typeof import('piscina');
  const pool = new Piscina({ filename: COPY_WORKER, minThreads: 1, maxThreads: 1 });
  try {
    let before = 0;
    for (const p of placed) {
      const base = before;
      await copyOne(pool, out, p, (copied) => onProgress(base + copied, total));
      before += p.size;
    }
  } finally {
    await pool.destroy();
  }
}

/** Runs one copy task; progress arrives on a port of its own, the result through piscina. */
async function copyOne(
  pool: Piscina,
  out: string,
  p: Placed,
  onProgress: (copied: number) => void,
): Promise<void> {
  const { port1, port2 } = new MessageChannel();
  let reported = 0;
  const report = (copied: number) => {
    if (copied <= reported) return;
    reported = copied;
    onProgress(copied);
  };
  port1.on('message', (m: CopyProgress) => report(m.copied));
  const request: CopyRequest = {
    type: 'copy',
    source: p.file,
    target: out,
    offset: p.offset,
    size: p.size,
    port: port2,
  };
  try {
    const result = (await pool.run(request, { transferList: [port2] })) as CopyResult;
    if (result.type === 'failed') {
      throw new TsrunError(
        `copying '${p.file}' into '${out}': ${result.error.message}`,
        result.error.code,
      );
    }
    report(result.copied);
  } finally {
    port1.close();
  }
}
