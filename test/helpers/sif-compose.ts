// Composes SIF files from the public format's description, independently of tsrun's own writer,
// to stand for what other tools write: the SIF library's version 2 (Apptainer, SingularityCE 3.8+)
// puts its data right after a table of 48 descriptors (32176) and aligns objects as asked, where
// Singularity 3.1 starts data at 32768. Test inputs only.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';

const HEADER = 128;
const DESCRIPTOR = 585;
const DESCRIPTORS_AT = 4096;
const CAPACITY = 48;
const GROUP = 0xf0000001;

export interface SifObject {
  dataType: number;
  data: Buffer;
  name: string;
  /** Partitions: file system, partition type, arch code ("02" is amd64). */
  partition?: { fsType: number; partType: number; arch?: string };
  /** Another object's id this one refers to (signatures), with the group flag for a group. */
  link?: number;
  /** Alignment of this object's offset in the file; 1 for none. */
  align?: number;
}

export function composeSif(file: string, objects: SifObject[], dataOffset?: number): void {
  const start = dataOffset ?? DESCRIPTORS_AT + CAPACITY * DESCRIPTOR;
  const now = BigInt(Math.floor(Date.now() / 1000));
  const table = Buffer.alloc(CAPACITY * DESCRIPTOR);
  const chunks: { at: number; data: Buffer }[] = [];
  let cursor = start;
  let arch = '00';
  objects.forEach((o, i) => {
    const align = o.align ?? 1;
    const at = Math.ceil(cursor / align) * align;
    const d = table.subarray(i * DESCRIPTOR, (i + 1) * DESCRIPTOR);
    d.writeInt32LE(o.dataType, 0);
    d.writeUInt8(1, 4);
    d.writeUInt32LE(i + 1, 5);
    d.writeUInt32LE(o.link === undefined ? GROUP : 0xf0000000, 9);
    d.writeUInt32LE(o.link ?? 0, 13);
    d.writeBigInt64LE(BigInt(at), 17);
    d.writeBigInt64LE(BigInt(o.data.length), 25);
    d.writeBigInt64LE(BigInt(at + o.data.length - cursor), 33); // size with padding
    d.writeBigInt64LE(now, 41);
    d.writeBigInt64LE(now, 49);
    d.write(o.name, 73, 127, 'latin1');
    if (o.partition !== undefined) {
      d.writeInt32LE(o.partition.fsType, 201);
      d.writeInt32LE(o.partition.partType, 205);
      d.write(o.partition.arch ?? '02', 209, 2, 'latin1');
      if (o.partition.partType === 2) arch = o.partition.arch ?? '02';
    }
    chunks.push({ at, data: o.data });
    cursor = at + o.data.length;
  });
  const h = Buffer.alloc(HEADER);
  h.write('#!/usr/bin/env run-singularity\n', 0, 'latin1');
  h.write('SIF_MAGIC', 32, 'latin1');
  h.write('01', 42, 'latin1');
  h.write(arch, 45, 'latin1');
  crypto.randomBytes(16).copy(h, 48);
  h.writeBigInt64LE(now, 64);
  h.writeBigInt64LE(now, 72);
  h.writeBigInt64LE(BigInt(CAPACITY - objects.length), 80);
  h.writeBigInt64LE(BigInt(CAPACITY), 88);
  h.writeBigInt64LE(BigInt(DESCRIPTORS_AT), 96);
  h.writeBigInt64LE(BigInt(table.length), 104);
  h.writeBigInt64LE(BigInt(start), 112);
  h.writeBigInt64LE(BigInt(cursor - start), 120);
  const fd = fs.openSync(file, 'w');
  try {
    fs.writeSync(fd, h, 0, HEADER, 0);
    fs.writeSync(fd, table, 0, table.length, DESCRIPTORS_AT);
    for (const c of chunks) fs.writeSync(fd, c.data, 0, c.data.length, c.at);
    fs.ftruncateSync(fd, cursor);
  } finally {
    fs.closeSync(fd);
  }
}
