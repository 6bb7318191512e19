// What an image is, found from its content, not its name: a sandbox directory, a SIF file, a
// squashfs file or an ext3 file; and for a file, which part of it holds the root filesystem.
import * as fs from 'node:fs';
import { TsrunError } from '../common/errors';
import { DataType, FsType, hasSifMagic, PartType, primaryPartition, readSif } from './sif';

export type ImageFormat = 'sandbox' | 'sif' | 'squashfs' | 'ext3';

/** An image and where its root filesystem lies. */
export interface ImageSource {
  format: ImageFormat;
  path: string;
  /** The file system to mount (files only). */
  fstype?: 'squashfs' | 'ext3';
  offset: number;
  /** Bytes from offset; 0 for the whole file. */
  size: number;
  /** A SIF file's writable overlay partition (ext3), when it has one. */
  overlay?: { offset: number; size: number };
}

const SQUASHFS_MAGIC = 0x73717368; // "hsqs"
const EXT_MAGIC = 0xef53;
const EXT_SUPERBLOCK = 1024;

function imageError(file: string, problem: string): TsrunError {
  return new TsrunError(`image '${file}': ${problem}`, 'EIMAGE');
}

/** A short description of bytes that are no known image, for the error. */
function describe(head: Buffer): string {
  if (head.length === 0) return 'an empty file';
  const start = head.subarray(0, 16);
  const printable = /^[\x20-\x7e\t\r\n]*$/.test(start.toString('latin1'));
  return printable
    ? `text starting with ${JSON.stringify(start.toString('latin1'))}`
    : `bytes ${start.toString('hex').replace(/(..)/g, '$1 ').trim()}`;
}

/** Checks a squashfs superblock (version 4, sane block size, data within the file). */
export function checkSquashfs(file: string, head: Buffer, size: number, at = 0): void {
  const sb = head.subarray(at);
  if (sb.length < 96) throw imageError(file, 'truncated squashfs superblock');
  const major = sb.readUInt16LE(28);
  const blockSize = sb.readUInt32LE(12);
  const bytesUsed = Number(sb.readBigUInt64LE(40));
  if (major !== 4) throw imageError(file, `squashfs version ${major} is not supported (only 4)`);
  if (blockSize < 4096 || blockSize > 1 << 20 || (blockSize & (blockSize - 1)) !== 0) {
    throw imageError(file, `bad squashfs superblock: block size ${blockSize}`);
  }
  if (bytesUsed > size) {
    throw imageError(file, `bad squashfs superblock: ${bytesUsed} bytes used, file has ${size}`);
  }
}

function readHead(fd: number, position: number): Buffer {
  const head = Buffer.alloc(2048);
  const n = fs.readSync(fd, head, 0, head.length, position);
  return head.subarray(0, n);
}

function sifSource(file: string, fd: number): ImageSource {
  const sif = readSif(file, fd);
  const part = primaryPartition(sif);
  const overlay = sif.descriptors.find(
    (d) => d.dataType === DataType.Partition && d.partType === PartType.Overlay,
  );
  if (overlay !== undefined && overlay.fsType !== FsType.Ext3) {
    throw imageError(
      file,
      `SIF overlay partition of file system type ${overlay.fsType} not supported`,
    );
  }
  const withOverlay =
    overlay === undefined ? {} : { overlay: { offset: overlay.offset, size: overlay.size } };
  if (part.fsType === FsType.Squash) {
    checkSquashfs(file, readHead(fd, part.offset), part.size);
    return {
      format: 'sif',
      path: file,
      fstype: 'squashfs',
      offset: part.offset,
      size: part.size,
      ...withOverlay,
    };
  }
  if (part.fsType === FsType.Ext3) {
    return {
      format: 'sif',
      path: file,
      fstype: 'ext3',
      offset: part.offset,
      size: part.size,
      ...withOverlay,
    };
  }
  if (part.fsType === FsType.EncryptedSquash) {
    throw imageError(file, 'its system partition is an encrypted squashfs: not supported');
  }
  throw imageError(file, `SIF system partition of file system type ${part.fsType} not supported`);
}

function fileSource(file: string, fd: number, size: number): ImageSource {
  const head = readHead(fd, 0);
  if (hasSifMagic(head)) return sifSource(file, fd);
  if (head.length >= 4 && head.readUInt32LE(0) === SQUASHFS_MAGIC) {
    checkSquashfs(file, head, size);
    return { format: 'squashfs', path: file, fstype: 'squashfs', offset: 0, size: 0 };
  }
  if (head.length >= EXT_SUPERBLOCK + 58 && head.readUInt16LE(EXT_SUPERBLOCK + 56) === EXT_MAGIC) {
    return { format: 'ext3', path: file, fstype: 'ext3', offset: 0, size: 0 };
  }
  throw imageError(file, `not a SIF, squashfs or ext3 image (found ${describe(head)})`);
}

/** Finds what `file` is. Throws a TsrunError (code EIMAGE, or the errno) naming the file. */
export function detectImage(file: string): ImageSource {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'EIO';
    const problem = code === 'ENOENT' ? 'does not exist' : code;
    throw new TsrunError(`image '${file}' ${problem}`, code);
  }
  if (st.isDirectory()) return { format: 'sandbox', path: file, offset: 0, size: 0 };
  if (!st.isFile()) throw imageError(file, 'not a directory or a regular file');
  const fd = fs.openSync(file, 'r');
  try {
    return fileSource(file, fd, st.size);
  } finally {
    fs.closeSync(fd);
  }
}
