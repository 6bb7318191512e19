// Reading SIF files (the Singularity Image Format, as Singularity 3.x and Apptainer write it): the
// global header, the descriptor table, and the partitions. Every count, offset and size is checked
// against the file's size before it is used: a damaged file gets a SifError naming what is wrong,
// never another exception.
import * as fs from 'node:fs';

export const SIF_MAGIC = 'SIF_MAGIC';
const HEADER_SIZE = 128;
const DESCRIPTOR_SIZE = 585;
/** More descriptors than any tool writes (Singularity makes 48): refuse a table past this. */
const MAX_DESCRIPTORS = 4096;

export const DataType = {
  Deffile: 0x4001,
  EnvVar: 0x4002,
  Labels: 0x4003,
  Partition: 0x4004,
  Signature: 0x4005,
  GenericJSON: 0x4006,
  Generic: 0x4007,
  CryptoMessage: 0x4008,
  // Added by the SIF library's version 2 (Apptainer 1.3's and SingularityCE 4's OCI-SIF).
  OCIRootIndex: 0x4009,
  OCIBlob: 0x400a,
  SBOM: 0x400b,
} as const;

export const FsType = { Squash: 1, Ext3: 2, ImmuObj: 3, Raw: 4, EncryptedSquash: 5 } as const;
export const PartType = { System: 1, PrimSys: 2, Data: 3, Overlay: 4 } as const;

export class SifError extends Error {
  readonly code = 'EIMAGE';
  constructor(file: string, problem: string) {
    super(`SIF file '${file}': ${problem}`);
    this.name = 'SifError';
  }
}

export interface SifHeader {
  version: string;
  arch: string;
  id: string;
  created: number;
  modified: number;
  descriptorsFree: number;
  descriptorsTotal: number;
  descriptorsOffset: number;
  descriptorsLength: number;
  dataOffset: number;
  dataLength: number;
}

export interface SifDescriptor {
  dataType: number;
  id: number;
  groupID: number;
  link: number;
  offset: number;
  size: number;
  name: string;
  /** Partitions only. */
  fsType?: number;
  partType?: number;
  arch?: string;
}

export interface Sif {
  file: string;
  size: number;
  header: SifHeader;
  descriptors: SifDescriptor[];
}

function cString(buf: Buffer, start: number, length: number): string {
  const bytes = buf.subarray(start, start + length);
  const nul = bytes.indexOf(0);
  return bytes.subarray(0, nul < 0 ? bytes.length : nul).toString('latin1');
}

/** A signed 64-bit field that must be a safe, non-negative integer. */
function int64(buf: Buffer, at: number, what: string, fail: (p: string) => never): number {
  const value = buf.readBigInt64LE(at);
  if (value < 0n || value > BigInt(Number.MAX_SAFE_INTEGER)) fail(`${what} is out of range`);
  return Number(value);
}

function readAt(fd: number, size: number, position: number): Buffer {
  const buf = Buffer.alloc(size);
  let done = 0;
  while (done < size) {
    const n = fs.readSync(fd, buf, done, size - done, position + done);
    if (n === 0) break;
    done += n;
  }
  return buf.subarray(0, done);
}

/** True when the buffer starts like a SIF file (the magic after the launch line). */
export function hasSifMagic(head: Buffer): boolean {
  return head.length >= 42 && head.toString('latin1', 32, 41) === SIF_MAGIC;
}

export function parseHeader(buf: Buffer, fileSize: number, fail: (p: string) => never): SifHeader {
  if (buf.length < HEADER_SIZE) fail(`truncated: ${buf.length} bytes, the header needs 128`);
  if (!hasSifMagic(buf)) fail('no SIF magic in the header');
  const i64 = (at: number, what: string) => int64(buf, at, what, fail);
  const header: SifHeader = {
    version: cString(buf, 42, 3),
    arch: cString(buf, 45, 3),
    id: buf.subarray(48, 64).toString('hex'),
    created: i64(64, 'creation time'),
    modified: i64(72, 'modification time'),
    descriptorsFree: i64(80, 'free descriptor count'),
    descriptorsTotal: i64(88, 'descriptor count'),
    descriptorsOffset: i64(96, 'descriptor table offset'),
    descriptorsLength: i64(104, 'descriptor table length'),
    dataOffset: i64(112, 'data offset'),
    dataLength: i64(120, 'data length'),
  };
  if (header.version !== '01') fail(`unsupported version '${header.version}'`);
  const h = header;
  if (h.descriptorsTotal > MAX_DESCRIPTORS) fail(`${h.descriptorsTotal} descriptors is too many`);
  if (h.descriptorsFree > h.descriptorsTotal) fail('more free descriptors than descriptors');
  if (h.descriptorsLength < h.descriptorsTotal * DESCRIPTOR_SIZE) {
    fail('the descriptor table is shorter than its descriptors');
  }
  if (h.descriptorsOffset < HEADER_SIZE || h.descriptorsOffset + h.descriptorsLength > fileSize) {
    fail('the descriptor table lies outside the file');
  }
  return header;
}

function parseDescriptor(
  buf: Buffer,
  at: number,
  fileSize: number,
  fail: (p: string) => never,
): SifDescriptor | undefined {
  if (buf.readUInt8(at + 4) === 0) return undefined; // an unused slot
  const i64 = (off: number, what: string) => int64(buf, at + off, what, fail);
  const d: SifDescriptor = {
    dataType: buf.readInt32LE(at),
    id: buf.readUInt32LE(at + 5),
    groupID: buf.readUInt32LE(at + 9),
    link: buf.readUInt32LE(at + 13),
    offset: i64(17, 'a descriptor offset'),
    size: i64(25, 'a descriptor size'),
    name: cString(buf, at + 73, 128),
  };
  if (d.offset + d.size > fileSize) {
    fail(
      `descriptor ${d.id} points past the end of the file (${d.offset}+${d.size} > ${fileSize})`,
    );
  }
  if (d.dataType === DataType.Partition) {
    d.fsType = buf.readInt32LE(at + 201);
    d.partType = buf.readInt32LE(at + 205);
    d.arch = cString(buf, at + 209, 3);
  }
  return d;
}

/** Reads and checks the header and descriptor table of the SIF file open on `fd`. */
export function readSif(file: string, fd: number): Sif {
  const fail = (problem: string): never => {
    throw new SifError(file, problem);
  };
  const size = fs.fstatSync(fd).size;
  const header = parseHeader(readAt(fd, HEADER_SIZE, 0), size, fail);
  const table = readAt(fd, header.descriptorsTotal * DESCRIPTOR_SIZE, header.descriptorsOffset);
  const descriptors: SifDescriptor[] = [];
  for (let i = 0; i < header.descriptorsTotal; i++) {
    const d = parseDescriptor(table, i * DESCRIPTOR_SIZE, size, fail);
    if (d !== undefined) descriptors.push(d);
  }
  if (descriptors.length !== header.descriptorsTotal - header.descriptorsFree) {
    fail('the descriptor count does not match the descriptors in use');
  }
  return { file, size, header, descriptors };
}

/** The primary system partition: the root filesystem of the container. */
export function primaryPartition(sif: Sif): SifDescriptor {
  const isSystem = (d: SifDescriptor) =>
    d.dataType === DataType.Partition && d.partType === PartType.PrimSys;
  const primary = sif.descriptors.find(isSystem);
  if (primary === undefined) {
    const oci = sif.descriptors.some((d) => d.dataType === DataType.OCIRootIndex);
    const why = oci
      ? 'it is an OCI-SIF (OCI image layers, as the --oci modes write them), which tsrun does not run'
      : 'no primary system partition';
    throw new SifError(sif.file, why);
  }
  return primary;
}
