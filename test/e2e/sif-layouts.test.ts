// SIF files laid out as tools other than Singularity 3.1 write them: data right after the
// descriptor table (the SIF library's version 2, used by Apptainer), partitions at offsets that
// are not block-aligned, extra objects (definition file, labels, a signature), and the kinds tsrun
// refuses (OCI-SIF, encrypted partitions).
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DataType, FsType, PartType } from '../../src/images/sif';
import { composeSif, SifObject } from '../helpers/sif-compose';
import {
  BUSYBOX,
  expectNothingLeftBehind,
  expectNoNewLoopDevices,
  requireImage,
  tsrun,
  withoutAdminBinds,
} from '../helpers/run';

describe('SIF files of other layouts', function () {
  let dir: string;
  let squashfs: Buffer;

  const deffile: SifObject = {
    dataType: DataType.Deffile,
    data: Buffer.from('Bootstrap: localimage\nFrom: busybox\n'),
    name: 'deffile',
  };
  const labels: SifObject = {
    dataType: DataType.Labels,
    data: Buffer.from('{"org.label-schema.usage":"none"}'),
    name: 'labels',
  };
  const partition = (align: number, fsType: number = FsType.Squash): SifObject => ({
    dataType: DataType.Partition,
    data: squashfs,
    name: 'rootfs',
    partition: { fsType, partType: PartType.PrimSys },
    align,
  });
  const signature: SifObject = {
    dataType: DataType.Signature,
    data: Buffer.from('-----BEGIN PGP SIGNED MESSAGE-----\n'),
    name: 'part-signature',
    link: 0xf0000001,
  };

  this.beforeAll(function () {
    requireImage(this, BUSYBOX, 'run scripts/setup.sh');
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-sif-layouts-'));
    const file = path.join(dir, 'rootfs.sqfs');
    execFileSync('mksquashfs', [BUSYBOX, file, '-noappend', '-quiet'], { stdio: 'ignore' });
    squashfs = fs.readFileSync(file);
  });
  this.afterAll(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });
  expectNothingLeftBehind();
  expectNoNewLoopDevices();

  it('runs a SIF file laid out as the SIF library version 2 writes it', () => {
    const sif = path.join(dir, 'v2.sif');
    composeSif(sif, [deffile, labels, partition(4096), signature]);
    expect(fs.readFileSync(sif).readBigInt64LE(112), 'data offset').to.equal(32176n);
    const script = 'grep ^ID= /etc/os-release; mount | head -1';
    const r = tsrun(['exec', sif, 'sh', '-c', script], { env: withoutAdminBinds() });
    expect(r.stderr).to.equal('');
    expect(r.stdout).to.match(/^ID=busybox\n\/dev\/loop\d+ on \/ type squashfs \(ro,/);
    const inspect = tsrun(['inspect', '--json', sif]);
    expect(inspect.status).to.equal(0);
    const types = JSON.parse(inspect.stdout).sif.descriptors.map(
      (d: { dataType: number }) => d.dataType,
    );
    expect(types).to.deep.equal([
      DataType.Deffile,
      DataType.Labels,
      DataType.Partition,
      DataType.Signature,
    ]);
  });

  it('runs a SIF file whose partition starts at an offset that is not block-aligned', () => {
    const sif = path.join(dir, 'unaligned.sif');
    composeSif(sif, [deffile, partition(1)]);
    const r = tsrun(['exec', sif, 'cat', '/etc/os-release']);
    expect(r.stderr).to.equal('');
    expect(r.stdout).to.match(/^NAME=/m);
    const partitionOffset = fs.readFileSync(sif).readBigInt64LE(4096 + 585 + 17);
    expect(partitionOffset).to.equal(BigInt(32176 + deffile.data.length));
    expect(Number(partitionOffset) % 512, 'offset modulo the sector size').to.not.equal(0);
  });

  it('refuses an OCI-SIF and an encrypted partition with one line naming what they are', () => {
    const oci = path.join(dir, 'oci.sif');
    composeSif(oci, [
      { dataType: DataType.OCIBlob, data: squashfs, name: '', align: 4096 },
      { dataType: DataType.OCIRootIndex, data: Buffer.from('{"schemaVersion":2}'), name: '' },
    ]);
    const r = tsrun(['exec', oci, 'true']);
    expect(r.status).to.equal(255);
    expect(r.stderr).to.match(/SIF file '.*oci\.sif': it is an OCI-SIF/);
    expect(r.stderr.trim().split('\n')).to.have.length(1);
    const encrypted = path.join(dir, 'encrypted.sif');
    composeSif(encrypted, [partition(4096, FsType.EncryptedSquash)]);
    const e = tsrun(['exec', encrypted, 'true']);
    expect(e.status).to.equal(255);
    expect(e.stderr).to.match(/encrypted\.sif.*encrypted squashfs: not supported/);
    expect(e.stderr.trim().split('\n')).to.have.length(1);
  });
});
