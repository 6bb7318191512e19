// The instance state folder: names, globs, the lock that says an instance runs, stale files.
import { expect } from 'chai';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  checkInstanceName,
  cleanStale,
  globToRegExp,
  instanceNames,
  instancePaths,
  isRunning,
  lockInstance,
  processStartTime,
  readState,
  writeState,
} from '../../../src/instances/state';

describe('instance state', function () {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-state-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('accepts letters, digits, -, _ and . and refuses anything else', () => {
    for (const ok of ['web', 'a.b-c_d', 'X9', '_x', 'x-'])
      expect(() => checkInstanceName(ok)).to.not.throw();
    for (const bad of ['', '.x', '-x', 'a/b', 'a b', 'a:b', 'é', 'x'.repeat(129), '*']) {
      expect(() => checkInstanceName(bad), bad).to.throw(/instance name .* is invalid/);
    }
  });

  it('matches whole names with * and ?, and nothing else as special', () => {
    expect(globToRegExp('par-*').test('par-12')).to.equal(true);
    expect(globToRegExp('par-*').test('xpar-1')).to.equal(false);
    expect(globToRegExp('a?c').test('abc')).to.equal(true);
    expect(globToRegExp('a.c').test('abc')).to.equal(false);
    expect(globToRegExp('a+(b)').test('a+(b)')).to.equal(true);
  });

  it('locks a name once: a second lock is refused, and the lock says it runs', () => {
    const paths = instancePaths(dir, 'web');
    const fd = lockInstance(paths, 'web');
    try {
      expect(isRunning(paths)).to.equal(true);
      expect(() => lockInstance(paths, 'web')).to.throw("instance 'web' already exists");
      expect(cleanStale(paths, 'web'), 'a running instance is not stale').to.equal(false);
    } finally {
      fs.closeSync(fd);
    }
    expect(isRunning(paths)).to.equal(false);
  });

  it('removes the state of an instance whose lock is free, and lists names from files', () => {
    const paths = instancePaths(dir, 'old');
    fs.writeFileSync(paths.lock, '');
    writeState(paths, { name: 'old' } as never);
    expect(readState(paths)?.name).to.equal('old');
    expect(instanceNames(dir)).to.deep.equal(['old']);
    expect(cleanStale(paths, 'old')).to.equal(true);
    expect(fs.readdirSync(dir)).to.deep.equal([]);
  });

  it("reads a process's start time, and nothing for a pid that is gone", () => {
    expect(processStartTime(process.pid)).to.match(/^\d+$/);
    expect(processStartTime(process.pid)).to.equal(processStartTime(process.pid));
    expect(processStartTime(2 ** 22 + 1)).to.equal(undefined);
  });
});
