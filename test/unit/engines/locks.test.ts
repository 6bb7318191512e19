import { expect } from 'chai';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { lockImages } from '../../../src/engines/tsrun/locks';
import { tsrunConfig } from '../../helpers/configs';

describe('image locks', () => {
  let file: string;

  before(() => {
    file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-lock-')), 'image.ext3');
    fs.writeFileSync(file, '');
  });
  after(() => fs.rmSync(path.dirname(file), { recursive: true, force: true }));

  const ext3 = { format: 'ext3', path: '', fstype: 'ext3', offset: 0, size: 0 } as const;
  const reader = () => tsrunConfig({ image: file, source: { ...ext3, path: file } });
  const writer = () => ({ ...reader(), writable: true });

  it('lets readers share an ext3 image and refuses a writer beside them', () => {
    const a = lockImages(reader());
    const b = lockImages(reader());
    expect(() => lockImages(writer())).to.throw(/in use by another container: cannot write to it/);
    for (const fd of [...a, ...b]) fs.closeSync(fd);
    const w = lockImages(writer());
    expect(() => lockImages(reader())).to.throw(/cannot read it/);
    for (const fd of w) fs.closeSync(fd);
  });

  it('takes no lock for a sandbox directory or a squashfs image', () => {
    expect(lockImages(tsrunConfig())).to.deep.equal([]);
  });
});
