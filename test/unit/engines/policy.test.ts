import { expect } from 'chai';
import { hostFileSystems } from '../../../src/engines/tsrun/policy';

describe('mount hostfs', () => {
  it("lists the host's disk and network file systems, not the kernel's nor the container's own", () => {
    const mountinfo = [
      '27 1 254:0 / / rw,relatime - ext4 /dev/vda rw',
      '22 27 0:21 / /proc rw - proc proc rw',
      '23 27 0:5 / /dev rw - devtmpfs udev rw',
      '24 27 0:22 / /sys rw - sysfs sysfs rw',
      '25 27 0:23 / /run rw - tmpfs tmpfs rw',
      '30 27 254:1 / /data rw - xfs /dev/vdb rw',
      '31 27 0:50 / /mnt/nfs rw - nfs4 srv:/x rw',
      '32 27 0:51 / /tmp rw - tmpfs tmpfs rw',
      '33 27 254:2 / /with\\040space rw - ext4 /dev/vdc rw',
      '34 27 7:0 / /img rw - squashfs /dev/loop0 ro',
      '35 24 0:30 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw',
      '36 27 254:3 / /var/lib/tsrun/mnt/session rw - ext4 /dev/vdd rw',
    ].join('\n');
    expect(hostFileSystems(mountinfo)).to.deep.equal(['/data', '/mnt/nfs', '/with space']);
  });
});
