// What the payload sees, flag by flag, on a Debian rootfs, as root: the environment, home, the
// working directory, /dev, mounts, name servers, the network, and the admin's tsrun.conf
// directives. The expected values are Singularity 3.1's where the README says tsrun follows it.
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  BUSYBOX,
  DEBIAN,
  expectNothingLeftBehind,
  requireImage,
  Result,
  tsrun,
} from '../helpers/run';

describe('what the payload sees (Debian rootfs)', function () {
  let dir: string;

  this.beforeAll(function () {
    requireImage(this, DEBIAN, 'run scripts/make-debian-rootfs.sh');
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-view-'));
  });
  this.afterAll(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });
  expectNothingLeftBehind();

  const sh = (args: string[], script: string, env?: NodeJS.ProcessEnv): Result =>
    tsrun(['exec', ...args, DEBIAN, 'sh', '-c', script], { cwd: '/tmp', env });

  it('passes the host environment, with prefixed variables and --env over the image', () => {
    const env = {
      ...process.env,
      HOSTVAR: 'host',
      SINGULARITYENV_FROM_S: 's',
      APPTAINERENV_FROM_A: 'a',
      TSRUN_ENV_FROM_T: 't',
      SINGULARITYENV_PREPEND_PATH: '/first',
      APPTAINERENV_APPEND_PATH: '/last',
      LD_LIBRARY_PATH: '/host/lib',
    };
    const value = 'two\nlines with "quotes", \'single\', = and $dollar ';
    const r = sh(
      ['--env', `ODD=${value}`],
      'echo "$HOSTVAR $FROM_S $FROM_A $FROM_T"; echo "$PATH"; echo "[$LD_LIBRARY_PATH]"; printf "%s|" "$ODD"',
      env,
    );
    expect(r.stderr).to.equal('');
    expect(r.stdout).to.equal(
      'host s a t\n/first:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/last\n[]\n' +
        `${value}|`,
    );
  });

  it('keeps only TERM, LANG and proxies with --cleanenv, and reads --env-file', () => {
    const file = path.join(dir, 'vars.env');
    fs.writeFileSync(file, '# vars\nexport A="quoted \\"a\\""\nB=plain\n');
    const env = { ...process.env, TERM: 'xterm', SECRET: 'x', https_proxy: 'http://p:3128' };
    const r = sh(['-e', '--env-file', file], 'env | sort', env);
    const names = r.stdout
      .trim()
      .split('\n')
      .map((l) => l.split('=')[0]);
    expect(names).to.include.members(['TERM', 'https_proxy', 'HOME', 'PATH', 'A', 'B']);
    expect(names).to.not.include('SECRET');
    expect(r.stdout).to.contain('A=quoted "a"\n');
  });

  it("keeps --env-file and NODE_OPTIONS away from tsrun's own Node processes", () => {
    const file = path.join(dir, 'node.env');
    fs.writeFileSync(file, 'NODE_OPTIONS=--no-such-node-flag\nMARK=1\n');
    const env = { ...process.env, NODE_OPTIONS: '--max-old-space-size=64' };
    const r = sh(['--env-file', file], 'echo "$MARK $NODE_OPTIONS"', env);
    expect(r.stderr).to.equal('');
    expect(r.stdout).to.equal('1 --no-such-node-flag\n');
    const host = sh([], 'echo "$NODE_OPTIONS"', env);
    expect(host.stdout).to.equal('--max-old-space-size=64\n');
    const missing = sh(['--env-file', path.join(dir, 'none.env')], 'true');
    expect(missing.status).to.equal(255);
    expect(missing.stderr).to.equal(
      `tsrun: --env-file '${path.join(dir, 'none.env')}': does not exist\n`,
    );
    const arg = tsrun(['exec', DEBIAN, 'echo', '--env-file=/nonexistent', '+kept']);
    expect(arg.stdout, 'payload arguments pass untouched').to.equal(
      '--env-file=/nonexistent +kept\n',
    );
  });

  it('refuses docker:// and other image URIs, naming what tsrun runs', () => {
    const r = tsrun(['exec', 'docker://busybox', 'true']);
    expect(r.status).to.equal(255);
    expect(r.stderr).to.equal(
      "tsrun: 'docker://busybox': docker:// images are not supported; tsrun runs local images (SIF, squashfs and ext3 files, sandbox directories)\n",
    );
  });

  it('refuses a malformed env file with its line number', () => {
    const file = path.join(dir, 'bad.env');
    fs.writeFileSync(file, 'A=1\nthis is not an assignment\n');
    const r = sh(['--env-file', file], 'true');
    expect(r.status).to.equal(255);
    expect(r.stderr).to.equal(
      `tsrun: --env-file '${file}' line 2: expected NAME=VALUE, found 'this is not an assignment'\n`,
    );
  });

  it('with --contain: the minimal /dev, empty /tmp and home, no cwd bind', () => {
    const r = sh(['--contain'], 'ls /dev | tr "\\n" " "; ls -A /tmp | wc -l; ls -A ~ | wc -l; pwd');
    expect(r.stderr).to.equal('');
    expect(r.stdout).to.equal(
      'fd full null ptmx pts random shm stderr stdin stdout tty urandom zero 0\n0\n/tmp\n',
    );
  });

  it('with --containall: also pid 1, a new ipc namespace and a clean environment', () => {
    const env = { ...process.env, SECRET: 'x' };
    const hostIpc = fs.readlinkSync('/proc/self/ns/ipc');
    const script =
      'echo $$; readlink /proc/self/ns/ipc; echo "[$SECRET]"; id; hostname; pwd; grep ^root: /etc/passwd';
    const r = sh(['--containall', '--no-init'], script, env);
    expect(r.stderr).to.equal('');
    expect(r.stdout.trim().split('\n')).to.deep.equal([
      '1',
      r.stdout.split('\n')[1],
      '[]',
      'uid=0(root) gid=0(root) groups=0(root)',
      os.hostname(),
      '/tmp',
      'root:x:0:0:root:/root:/bin/bash',
    ]);
    expect(r.stdout.split('\n')[1]).to.not.equal(hostIpc);
    const init = sh(['--containall'], 'cat /proc/1/comm', env);
    expect(init.stdout).to.equal('tsrun-init\n');
  });

  it('binds --home src:dst as $HOME, and mounts no home with --no-home', () => {
    const home = path.join(dir, 'myhome');
    fs.mkdirSync(home, { recursive: true });
    fs.writeFileSync(path.join(home, 'mark'), 'mine');
    const r = sh(['--home', `${home}:/home/custom`], 'echo $HOME; cat ~/mark; echo; pwd');
    expect(r.stdout).to.equal('/home/custom\nmine\n/tmp\n');
    const none = sh(['--no-home'], 'grep -c " /root " /proc/self/mountinfo || true');
    expect(none.stdout).to.equal('0\n');
    const missing = sh(['--home', path.join(dir, 'nope')], 'true');
    expect(missing.status).to.equal(255);
    expect(missing.stderr).to.equal(
      `tsrun: stage 1: --home '${path.join(dir, 'nope')}' does not exist\n`,
    );
  });

  it('keeps /tmp, home and --scratch in --workdir when contained', () => {
    const work = path.join(dir, 'work');
    fs.mkdirSync(work);
    const r = sh(['-c', '-W', work, '-S', '/scratch'], 'touch /tmp/t ~/h /scratch/s; ls /scratch');
    expect(r.stdout).to.equal('s\n');
    expect(fs.existsSync(path.join(work, 'tmp', 't'))).to.equal(true);
    expect(fs.existsSync(path.join(work, 'home', 'h'))).to.equal(true);
    expect(fs.readdirSync(path.join(work, 'scratch', '0-scratch'))).to.deep.equal(['s']);
  });

  it('writes --dns into resolv.conf and brings lo up in -n/--net', () => {
    const dns = sh(['--dns', '10.0.0.1,fd00::1'], 'cat /etc/resolv.conf');
    expect(dns.stdout).to.equal('nameserver 10.0.0.1\nnameserver fd00::1\n');
    const bad = sh(['--dns', 'not-an-ip'], 'true');
    expect(bad.stderr).to.equal("tsrun: --dns: 'not-an-ip' is not an IP address\n");
    const hostNet = fs.readlinkSync('/proc/self/ns/net');
    const net = sh(
      ['--net'],
      'readlink /proc/self/ns/net; ls /sys/class/net; cat /sys/class/net/lo/flags',
    );
    const [ns, ifaces, flags] = net.stdout.trim().split('\n');
    expect(ns).to.not.equal(hostNet);
    expect(ifaces).to.equal('lo');
    expect(Number(flags) & 1, 'IFF_UP').to.equal(1);
  });

  it('binds paths with spaces, repeated and comma-separated, read-only with :ro', () => {
    const a = path.join(dir, 'with space');
    const b = path.join(dir, 'second dir');
    fs.mkdirSync(a, { recursive: true });
    fs.mkdirSync(b, { recursive: true });
    fs.writeFileSync(path.join(a, 'f'), 'A');
    fs.writeFileSync(path.join(b, 'f'), 'B');
    const script = 'cat "/mnt/a b/f" /mnt/c/f /opt/x/f; touch /mnt/c/w 2>/dev/null || echo ro';
    const r = sh(['-B', `${a}:/mnt/a b,${b}:/mnt/c:ro`, '--bind', `${a}:/opt/x`], script);
    expect(r.stderr).to.equal('');
    expect(r.stdout).to.equal('ABAro\n');
  });

  // The whole view at once, for the default, --contain and --containall: what `id`, `pwd`,
  // `hostname`, `grep Cap`, `ls /dev`, /etc/passwd and the mount table show, as Singularity 3.1
  // shows them with its default singularity.conf (mount dev = yes binds the host's /dev with its
  // submounts; --contain makes the minimal /dev and session tmpfs for /tmp, /var/tmp and home).
  describe('the whole view, flag by flag', function () {
    const script = [
      'id',
      'pwd',
      'hostname',
      'grep ^Cap /proc/self/status',
      'echo --; ls /dev',
      'echo --; grep -E "^(root|$(id -un)):" /etc/passwd',
      "echo --; awk '{print $5, $9}' /proc/self/mountinfo",
    ].join('; ');
    const bounding = fs.readFileSync('/proc/self/status', 'utf8').match(/^CapBnd:\s+(\w+)$/m)![1];
    const caps = [
      'CapInh:\t0000000000000000',
      `CapPrm:\t${bounding}`,
      `CapEff:\t${bounding}`,
      `CapBnd:\t${bounding}`,
      'CapAmb:\t0000000000000000',
    ];
    const head = ['uid=0(root) gid=0(root) groups=0(root)', '/tmp', os.hostname(), ...caps];
    const passwd = ['root:x:0:0:root:/root:/bin/bash'];
    // The mounts every view ends with: identity files, then the admin's `bind path` lines
    // (/etc/localtime lands where the image's symlink points).
    const tail = [
      '/etc/passwd tmpfs',
      '/etc/group tmpfs',
      '/etc/resolv.conf',
      '/usr/share/zoneinfo/Etc/UTC',
      '/etc/hosts',
    ];
    // A bind shows the host file system's type: only the mount points are compared for those.
    const norm = (line: string): string =>
      / (tmpfs|proc|sysfs|devpts|devtmpfs|overlay)$/.test(line) ? line : line.split(' ')[0];
    const containDev = ['fd', 'full', 'null', 'ptmx', 'pts', 'random', 'shm', 'stderr'].concat([
      'stdin',
      'stdout',
      'tty',
      'urandom',
      'zero',
    ]);
    const containMounts = [
      '/ overlay',
      '/proc proc',
      '/sys sysfs',
      '/dev tmpfs',
      ...['null', 'zero', 'full', 'random', 'urandom', 'tty'].map((d) => `/dev/${d} devtmpfs`),
      '/dev/pts devpts',
      '/dev/shm tmpfs',
      '/tmp tmpfs',
      '/var/tmp tmpfs',
      '/root tmpfs',
      ...tail,
    ];

    function view(args: string[]): {
      head: string[];
      dev: string[];
      users: string[];
      mounts: string[];
    } {
      const r = sh(args, script);
      expect(r.stderr, args.join(' ')).to.equal('');
      const [h, dev, users, mounts] = r.stdout
        .trim()
        .split('\n--\n')
        .map((p) => p.split('\n'));
      return { head: h, dev, users, mounts: mounts.map(norm) };
    }

    it('by default: the host /dev with its submounts, /tmp, /var/tmp and home bound', () => {
      const v = view([]);
      expect(v.head).to.deep.equal(head);
      expect(v.dev).to.have.members(fs.readdirSync('/dev'));
      expect(v.users).to.deep.equal(passwd);
      const hostDev = fs
        .readFileSync('/proc/self/mountinfo', 'utf8')
        .split('\n')
        .map((l) => l.split(' '))
        .filter((f) => f.length > 9 && f[4].startsWith('/dev/'))
        .map((f) => norm(`${f[4]} ${f[f.indexOf('-') + 1]}`));
      // rbind copies the submounts in tree order, not in the host's order of mounting.
      const sub = (m: string): boolean => m.startsWith('/dev/');
      expect(v.mounts.filter(sub).sort()).to.deep.equal(hostDev.sort());
      expect(v.mounts.filter((m) => !sub(m))).to.deep.equal([
        '/ overlay',
        '/proc proc',
        '/sys sysfs',
        '/dev devtmpfs',
        '/tmp',
        '/var/tmp',
        '/root',
        ...tail,
      ]);
      expect(v.mounts.findIndex(sub)).to.equal(4);
    });

    it('with --contain: the minimal /dev and session tmpfs mounts, the same ids and caps', () => {
      const v = view(['--contain']);
      expect(v.head).to.deep.equal(head);
      expect(v.dev).to.deep.equal(containDev);
      expect(v.users).to.deep.equal(passwd);
      expect(v.mounts).to.deep.equal(containMounts);
    });

    it('with --containall: the same mounts, in new pid and ipc namespaces', () => {
      const v = view(['--containall']);
      expect(v.head).to.deep.equal(head);
      expect(v.dev).to.deep.equal(containDev);
      expect(v.users).to.deep.equal(passwd);
      expect(v.mounts).to.deep.equal(containMounts);
    });

    it('as another uid (--security uid:65534,gid:65534): that id, no capability', () => {
      const v = view(['--security', 'uid:65534,gid:65534']);
      expect(v.head).to.deep.equal([
        'uid=65534(nobody) gid=65534(nogroup) groups=65534(nogroup)',
        '/tmp',
        os.hostname(),
        ...caps.map((c) => c.replace(/\t.*/, '\t0000000000000000')),
      ]);
      expect(v.users).to.deep.equal([
        ...passwd,
        'nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin',
      ]);
    });
  });

  it('keeps a bind through a symlink to /etc inside the container root', () => {
    const image = path.join(dir, 'linky');
    execFileSync('cp', ['-a', `${BUSYBOX}/.`, image]);
    fs.symlinkSync('/etc', path.join(image, 'abs-etc'));
    fs.symlinkSync('../../../../../etc', path.join(image, 'rel-etc'));
    const src = path.join(dir, 'bindsrc');
    fs.mkdirSync(src);
    fs.writeFileSync(path.join(src, 'inside'), 'ok');
    for (const link of ['abs-etc', 'rel-etc']) {
      const dest = `/${link}/tsrun-bind-test`;
      const r = tsrun([
        'exec',
        '-B',
        `${src}:${dest}`,
        image,
        'cat',
        '/etc/tsrun-bind-test/inside',
      ]);
      expect(r.stderr, link).to.equal('');
      expect(r.stdout).to.equal('ok');
      expect(fs.existsSync('/etc/tsrun-bind-test'), 'nothing made on the host').to.equal(false);
      expect(
        fs.existsSync(path.join(image, 'etc', 'tsrun-bind-test')),
        'nor in the image',
      ).to.equal(false);
    }
  });
});

describe('tsrun.conf directives, on the Debian rootfs', function () {
  let dir: string;
  let conf: string;
  this.beforeAll(function () {
    requireImage(this, DEBIAN, 'run scripts/make-debian-rootfs.sh');
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-directives-'));
    conf = path.join(dir, 'tsrun.conf');
  });
  this.afterAll(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });
  expectNothingLeftBehind();

  function run(lines: string[], args: string[], script: string): Result {
    fs.writeFileSync(conf, `${lines.join('\n')}\n`, { mode: 0o644 });
    const env = { ...process.env, TSRUN_CONF: conf };
    return tsrun(['exec', ...args, DEBIAN, 'sh', '-c', script], { env, cwd: '/' });
  }

  it('leaves out the mounts and files the admin turns off', () => {
    const script =
      'ls /proc | wc -l; ls /sys | wc -l; ls /dev | wc -l; grep -c " /tmp " /proc/self/mountinfo';
    const on = run([], [], script).stdout.trim().split('\n').map(Number);
    expect(on.slice(0, 3).every((n) => n > 0)).to.equal(true);
    const off = ['mount sys = no', 'mount dev = no', 'mount tmp = no'];
    const mounted = (dest: string) => `grep -c " ${dest} " /proc/self/mountinfo || true`;
    const r = run(off, [], `ls /sys | wc -l; ${mounted('/dev')}; ${mounted('/tmp')}`);
    expect(r.stderr).to.equal('');
    expect(r.stdout, "the image's own /dev stays, unmounted").to.equal('0\n0\n0\n');
  });

  it("binds the admin's `bind path` and gives a minimal /dev with `mount dev = minimal`", () => {
    const src = path.join(dir, 'shared');
    fs.mkdirSync(src, { recursive: true });
    fs.writeFileSync(path.join(src, 'f'), 'admin');
    const r = run(
      [`bind path = ${src}:/opt/shared`, 'mount dev = minimal'],
      [],
      'cat /opt/shared/f; ls /dev | wc -l',
    );
    expect(r.stdout).to.equal('admin13\n');
  });

  it('starts a root payload with no capabilities under `root default capabilities = no`', () => {
    const conf = ['root default capabilities = no'];
    const none = run(conf, [], 'grep CapEff /proc/self/status');
    expect(none.stdout).to.equal('CapEff:\t0000000000000000\n');
    const kept = run(conf, ['--keep-privs'], 'grep CapEff /proc/self/status');
    expect(kept.stdout).to.not.equal(none.stdout);
    expect(kept.stdout).to.match(/^CapEff:\t[0-9a-f]{16}\n$/);
  });

  it('with `enable overlay = no`: no --writable-tmpfs, and a missing bind point is skipped', () => {
    const conf = ['enable overlay = no'];
    const tmpfs = run(conf, ['--writable-tmpfs'], 'true');
    expect(tmpfs.status).to.equal(255);
    expect(tmpfs.stderr).to.contain("need overlayfs ('enable overlay = no' in tsrun.conf)");
    const src = fs.mkdtempSync(path.join(dir, 'bind-'));
    const r = run(
      conf,
      ['-B', `${src}:/no/such/dir`],
      'ls /no 2>&1 || echo missing; grep -c " / overlay " /proc/self/mountinfo || true',
    );
    expect(r.status).to.equal(0);
    expect(r.stdout).to.match(/missing\n0\n$/);
  });

  it('binds a shared host mount as a slave (`mount slave = yes`) or private (no), never shared', () => {
    const shared = fs.mkdtempSync(path.join(dir, 'shared-'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tsrun-test', shared]);
    try {
      execFileSync('mount', ['--make-shared', shared]);
      const script =
        "grep ' /data ' /proc/self/mountinfo | grep -o 'shared:[0-9]*\\|master:[0-9]*' || echo none; " +
        'mkdir -p /data/sub && mount -t tmpfs inner /data/sub && echo mounted';
      const slave = run(['mount slave = yes'], ['-B', `${shared}:/data`], script);
      expect(slave.stdout).to.match(/^master:\d+\nmounted\n$/);
      const priv = run(['mount slave = no'], ['-B', `${shared}:/data`], script);
      expect(priv.stdout).to.equal('none\nmounted\n');
      const onHost = fs.readFileSync('/proc/self/mountinfo', 'utf8');
      expect(onHost, 'the container mount never reaches the host').to.not.contain(`${shared}/sub`);
    } finally {
      execFileSync('umount', ['-l', shared]);
    }
  });

  it("binds the host's disk file systems at their paths with `mount hostfs = yes`", () => {
    const image = path.join(dir, 'hostfs.ext2');
    // Outside /tmp, which the container gets anyway (with what is mounted below it).
    const point = `/mnt/tsrun-hostfs-${process.pid}`;
    fs.mkdirSync(point, { recursive: true });
    execFileSync('truncate', ['-s', '8M', image]);
    execFileSync('mkfs.ext2', ['-q', '-F', image]);
    execFileSync('mount', ['-o', 'loop', image, point]);
    try {
      fs.writeFileSync(path.join(point, 'mark'), 'host disk');
      const script = `cat ${point}/mark 2>/dev/null || echo absent`;
      expect(run(['mount hostfs = yes'], [], script).stdout).to.equal('host disk');
      expect(run(['mount hostfs = no'], [], script).stdout).to.equal('absent\n');
    } finally {
      execFileSync('umount', [point]);
      fs.rmdirSync(point);
    }
  });

  it('refuses what the admin forbids, naming the directive', () => {
    const pid = run(['allow pid ns = no'], ['--pid'], 'true');
    expect(pid.stderr).to.equal(
      "tsrun: stage 1: a pid namespace (--pid, --containall, an instance) is not allowed ('allow pid ns = no' in tsrun.conf)\n",
    );
    const bind = run(['user bind control = no'], ['-B', '/tmp:/mnt'], 'true');
    expect(bind.status).to.equal(255);
    expect(bind.stderr).to.contain("'user bind control = no' in tsrun.conf");
    const paths = run(['limit container paths = /opt/images'], [], 'true');
    expect(paths.status).to.equal(255);
    expect(paths.stderr).to.contain(
      `image '${DEBIAN}' is outside 'limit container paths' (/opt/images)`,
    );
    const inside = run(
      [`limit container paths = ${path.dirname(DEBIAN)}`, 'limit container owners = root'],
      [],
      'true',
    );
    expect(inside.stderr).to.equal('');
    expect(inside.status).to.equal(0);
    const owners = run(['limit container owners = nobody'], [], 'true');
    expect(owners.stderr).to.contain("not by one of 'limit container owners'");
  });
});
