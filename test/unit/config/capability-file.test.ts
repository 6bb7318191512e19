// capability.json: parsing, the owner and mode checks, updates, and what it grants a user.
import { expect } from 'chai';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  capabilityFile,
  DEFAULT_CAPABILITY_FILE,
  grantedTo,
  parseGrants,
  readGrants,
  updateGrants,
} from '../../../src/config/capability-file';
import { ROOT } from '../../helpers/run';

describe('capability file', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-capfile-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("lives in the install's etc folder, beside tsrun.conf", () => {
    expect(DEFAULT_CAPABILITY_FILE).to.equal(path.join(ROOT, 'etc', 'capability.json'));
    expect(capabilityFile({})).to.equal(DEFAULT_CAPABILITY_FILE);
  });

  it('parses users and groups, and refuses what is not a capability list', () => {
    const text = '{"users": {"alice": ["CAP_NET_RAW"]}, "groups": {"lab": ["CAP_CHOWN"]}}';
    const grants = parseGrants(text, '/f');
    expect(grants.users.alice).to.deep.equal(['CAP_NET_RAW']);
    expect(grants.groups.lab).to.deep.equal(['CAP_CHOWN']);
    expect(() => parseGrants('{"users": {"a": ["NET_RAW"]}}', '/f')).to.throw(
      "capability file '/f': users.a must be an array of capability names",
    );
    expect(() => parseGrants('[', '/f')).to.throw(/capability file '\/f': not valid JSON/);
  });

  it("grants a user its own capabilities and its groups', in kernel order", () => {
    const grants = parseGrants(
      '{"users": {"alice": ["CAP_NET_RAW"]}, "groups": {"lab": ["CAP_CHOWN"], "x": ["CAP_KILL"]}}',
      '/f',
    );
    expect(grantedTo(grants, 'alice', ['lab'])).to.deep.equal(['CAP_CHOWN', 'CAP_NET_RAW']);
    expect(grantedTo(grants, 'constructor', ['__proto__'])).to.deep.equal([]);
  });

  it('grants nothing when the file is missing', () => {
    expect(readGrants(path.join(dir, 'capability.json'))).to.deep.equal({ users: {}, groups: {} });
  });

  it('writes updates root-owned, mode 0644, and reads them back', function () {
    if (process.getuid!() !== 0) return this.skip();
    const file = path.join(dir, 'etc', 'capability.json');
    updateGrants(file, (g) => {
      g.users.nobody = ['CAP_NET_RAW'];
    });
    const st = fs.statSync(file);
    expect([st.uid, st.mode & 0o7777]).to.deep.equal([0, 0o644]);
    expect(readGrants(file).users.nobody).to.deep.equal(['CAP_NET_RAW']);
    expect(fs.readdirSync(path.dirname(file))).to.deep.equal(['capability.json']);
  });

  it('refuses a file writable by others or owned by another user', function () {
    if (process.getuid!() !== 0) return this.skip();
    const file = path.join(dir, 'capability.json');
    fs.writeFileSync(file, '{}', { mode: 0o666 });
    fs.chmodSync(file, 0o666);
    expect(() => readGrants(file)).to.throw(/must be writable by root only \(its mode is 0666\)/);
    fs.chmodSync(file, 0o644);
    fs.chownSync(file, 65534, 65534);
    expect(() => readGrants(file)).to.throw(/must be owned by root, not uid 65534/);
  });
});
