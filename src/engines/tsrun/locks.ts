// Image locks, held by the master for the container's life: an ext3 file system (an image, an
// overlay file, a SIF file's overlay partition) has one writer and no reader beside it, or only
// readers. flock on the file: shared to read, exclusive to write, never waiting.
import * as fs from 'node:fs';
import { TsrunError } from '../../common/errors';
import { addon } from '../../native/addon';
import type { TsrunEngineConfig } from './config';

interface Wanted {
  file: string;
  exclusive: boolean;
}

/** The ext3 file systems a container mounts, and whether it writes to them. */
function wantedLocks(cfg: TsrunEngineConfig): Wanted[] {
  const wanted: Wanted[] = [];
  if (cfg.source?.fstype === 'ext3') wanted.push({ file: cfg.image, exclusive: cfg.writable });
  for (const overlay of cfg.overlays ?? []) {
    if (overlay.source?.fstype === 'ext3') {
      wanted.push({ file: overlay.path, exclusive: !overlay.readonly });
    }
  }
  return wanted;
}

/** Takes the locks; returns their fds (close them to release). Throws naming a busy file. */
export function lockImages(cfg: TsrunEngineConfig): number[] {
  const fds: number[] = [];
  try {
    for (const { file, exclusive } of wantedLocks(cfg)) {
      const fd = fs.openSync(file, 'r');
      fds.push(fd);
      try {
        addon().flock(fd, exclusive);
      } catch (err) {
        if ((err as { code?: string }).code !== 'EAGAIN') throw err;
        const how = exclusive ? 'write to it' : 'read it';
        throw new TsrunError(
          `image '${file}' is in use by another container: cannot ${how}`,
          'EBUSY',
        );
      }
    }
    return fds;
  } catch (err) {
    for (const fd of fds) fs.closeSync(fd);
    throw err;
  }
}
