// A wrapper's config for tsrun-starter can name namespaces to join by path instead of creating
// them: the payload then shares them with the process that owns them.
import { expect } from 'chai';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { buildEngineConfig } from '../../src/cli/config';
import type { TsrunEngineConfig } from '../../src/engines/tsrun/config';
import { BUSYBOX, expectNothingLeftBehind, requireImage, STARTER, waitFor } from '../helpers/run';

describe('joining namespaces by path (tsrun-starter config)', function () {
  let dir: string;
  this.beforeAll(function () {
    requireImage(this, BUSYBOX, 'run scripts/setup.sh');
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-join-'));
  });
  this.afterAll(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });
  expectNothingLeftBehind();

  function starter(join: TsrunEngineConfig['joinNamespaces'], script: string) {
    const config = buildEngineConfig('exec', BUSYBOX, ['sh', '-c', script], {});
    (config.engineConfig as TsrunEngineConfig).joinNamespaces = join;
    const file = path.join(dir, 'config.json');
    fs.writeFileSync(file, JSON.stringify(config));
    return spawnSync(STARTER, [file], { encoding: 'utf8', timeout: 30000 });
  }

  it("joins another process's network and uts namespaces", async () => {
    const owner = spawn('unshare', [
      '--net',
      '--uts',
      'sh',
      '-c',
      'hostname owner-ns; exec sleep 30',
    ]);
    try {
      const ns = (kind: string) => `/proc/${owner.pid}/ns/${kind}`;
      await waitFor(
        () => fs.readlinkSync(ns('net')) !== fs.readlinkSync('/proc/self/ns/net'),
        5000,
      );
      await waitFor(
        () =>
          spawnSync('nsenter', ['-t', String(owner.pid), '-u', 'hostname'], { encoding: 'utf8' })
            .stdout === 'owner-ns\n',
        5000,
      );
      const r = starter({ net: ns('net'), uts: ns('uts') }, 'readlink /proc/self/ns/net; hostname');
      expect(r.stderr).to.equal('');
      expect(r.stdout).to.equal(`${fs.readlinkSync(ns('net'))}\nowner-ns\n`);
    } finally {
      owner.kill('SIGKILL');
      await new Promise((resolve) => owner.on('exit', resolve));
    }
  });

  it('refuses a path that is not a namespace of that kind, in one line', () => {
    const r = starter({ net: '/proc/self/ns/uts' }, 'true');
    expect(r.status).to.equal(255);
    expect(r.stderr).to.match(
      /joinNamespaces\.net '\/proc\/self\/ns\/uts' is a 'uts:\[\d+\]', not a net namespace/,
    );
    const missing = starter({ ipc: '/nonexistent/ns' }, 'true');
    expect(missing.stderr).to.contain("joinNamespaces.ipc '/nonexistent/ns': does not exist");
  });
});
