import { createServer, type Server } from 'node:http';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { BuildkiteSimulator } from '../../src/sim/index.js';
import { runPort } from '../helpers/spawn-port.js';

/** Each test runs the real bin several times; on a busy 2-core machine one start can take seconds. */
const SLOW = 120_000;

let sim: BuildkiteSimulator;
let dir: string;
/** Stands in for Buildkite's REST API: `GET /v2/access-token` (https://buildkite.com/docs/apis/rest-api/access-token). */
let api: Server;
let apiUrl: string;
/** An upstream that answers, and a port nothing listens on. */
let upstream: Server;
let upstreamUrl: string;
let closedUrl: string;

const GOOD_TOKEN = 'bk-api-token-for-tests';

beforeAll(async () => {
  sim = await BuildkiteSimulator.start({ organization: 'acme' });
  dir = mkdtempSync(join(tmpdir(), 'port-config-check-'));
  api = createServer((req, res) => {
    const ok = req.url === '/v2/access-token' && req.headers.authorization === `Bearer ${GOOD_TOKEN}`;
    res.writeHead(ok ? 200 : 401, { 'content-type': 'application/json' });
    res.end(JSON.stringify(ok ? { uuid: 'b63254c0-3271-4a98-8270-7cfbd6c2f14e', scopes: ['read_builds', 'write_builds'] } : { message: 'Authentication required' }));
  });
  upstream = createServer((_req, res) => res.writeHead(404).end());
  await Promise.all([api, upstream].map((s) => new Promise<void>((r) => s.listen(0, '127.0.0.1', r))));
  apiUrl = `http://127.0.0.1:${(api.address() as AddressInfo).port}`;
  upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  // A port that was free a moment ago: nothing listens there.
  const probe = createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  closedUrl = `http://127.0.0.1:${(probe.address() as AddressInfo).port}`;
  await new Promise((r) => probe.close(r));
});
afterAll(async () => {
  await sim?.close();
  api?.close();
  upstream?.close();
  rmSync(dir, { recursive: true, force: true });
});

const GOOD_POLICIES: Record<string, string> = {
  'exchange.cedar': `@id("acme-exchange")
permit (principal is Port::Job, action == Port::Action::"exchange", resource == Port::Organization::"acme");
`,
  'credentials.cedar': `@id("deploy-from-main")
permit (principal is Port::Job, action == Port::Action::"assume", resource == Port::Credential::"deploy-token")
when { principal.branch == "main" };
`,
};

function base(): Record<string, unknown> {
  return {
    server: { listen: '127.0.0.1:0', public_url: 'https://port.acme.test' },
    buildkite: { organization: 'acme', issuer: sim.issuer, jwks_url: sim.jwksUrl },
    credentials: { 'deploy-token': { type: 'port_token', audience: 'https://deploy.acme.test' } },
  };
}

function writeSetup(name: string, config: Record<string, unknown> | string, policies: Record<string, string>): string {
  const root = join(dir, name);
  mkdirSync(join(root, 'policies'), { recursive: true });
  for (const [f, text] of Object.entries(policies)) writeFileSync(join(root, 'policies', f), text);
  const file = join(root, 'port.yaml');
  writeFileSync(file, typeof config === 'string' ? config : stringify(config));
  return file;
}

/** stderr's lines: one per finding. */
function lines(stderr: string): string[] {
  return stderr.split('\n').filter((l) => l !== '');
}

describe('port config check', () => {
  it('passes a good config and its policies (exit 0)', async () => {
    const file = writeSetup('good', base(), GOOD_POLICIES);
    const r = await runPort(['config', 'check', '-c', file]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`${file}: OK: 2 policies, 1 credential, 0 upstreams`);
  }, SLOW);

  it('lists every problem of config and policies together, one line each (exit 1)', async () => {
    const config = {
      ...base(),
      server: { listen: '127.0.0.1:0', public_url: 'https://port.acme.test', admin_token: 'env:PORT_TEST_UNSET_ADMIN' },
      credentials: {
        'deploy-token': { type: 'port_token', audience: 'https://deploy.acme.test' },
        'npm-publish': { type: 'secret', value: 'env:PORT_TEST_UNSET_NPM' },
        'unused-secret': { type: 'secret', value: 'file:./no-such-secret' },
        'by-command': { type: 'secret', value: 'command:exit 1' },
      },
      upstreams: {
        artifacts: { url: 'https://artifacts.acme.test', inject: { bearer: 'env:PORT_TEST_UNSET_ARTIFACTS' } },
        lonely: { url: 'https://lonely.acme.test' },
      },
    };
    const policies = {
      ...GOOD_POLICIES,
      'broken.cedar': '@id("broken")\npermit (principal, action, resource) when { nonsense ;\n',
      'invalid.cedar': '@id("no-such-attribute")\npermit (principal is Port::Job, action == Port::Action::"exchange", resource)\nwhen { principal.no_such_attribute == "x" };\n',
      'refs.cedar': [
        '@id("typo-credential")',
        'permit (principal is Port::Job, action == Port::Action::"assume", resource == Port::Credential::"deploy-tokn");',
        '',
        '@id("npm")',
        'permit (principal is Port::Job, action == Port::Action::"assume", resource == Port::Credential::"npm-publish");',
        '',
        '@id("relay")',
        'permit (principal is Port::Job, action == Port::Action::"proxy", resource)',
        'when { resource == Port::Upstream::"artifacts" || resource == Port::Upstream::"artefacts" };',
        '',
        '@id("other-org")',
        'forbid (principal is Port::Job in Port::Pipeline::"globex/deploy", action, resource);',
        '',
      ].join('\n'),
    };
    const file = writeSetup('broken', config, policies);
    const env = { PORT_TEST_UNSET_ADMIN: '', PORT_TEST_UNSET_NPM: '', PORT_TEST_UNSET_ARTIFACTS: '' };
    const r = await runPort(['config', 'check', '-c', file], { env });
    expect(r.code).toBe(1);
    const out = lines(r.stderr);
    const p = join(dir, 'broken', 'policies');
    const expected: RegExp[] = [
      // The policies: a parse error and a validation error, each at file:line:col.
      new RegExp(`^${p}/broken\\.cedar:\\d+:\\d+: `),
      new RegExp(`^${p}/invalid\\.cedar:3:\\d+: policy no-such-attribute: .*no_such_attribute`),
      // Names that don't exist in the config, at the literal.
      new RegExp(`^${p}/refs\\.cedar:2:\\d+: policy typo-credential: Port::Credential::"deploy-tokn" is not a credential in .*port\\.yaml; add it under credentials: or use one of: deploy-token, npm-publish, unused-secret, by-command\\.$`),
      new RegExp(`^${p}/refs\\.cedar:9:\\d+: policy relay: Port::Upstream::"artefacts" is not an upstream in .*; add it under upstreams: or use one of: artifacts, lonely\\.$`),
      // Another organization's pipeline: never matches (a warning).
      new RegExp(`^warning: ${p}/refs\\.cedar:12:\\d+: policy other-org: Port::Pipeline::"globex/deploy" is outside buildkite\\.organization acme`),
      // Every secret that doesn't resolve, with its key (the command: one is not run).
      /port\.yaml: server\.admin_token: environment variable PORT_TEST_UNSET_ADMIN is not set/,
      /port\.yaml: credentials\.npm-publish\.value: environment variable PORT_TEST_UNSET_NPM is not set/,
      /port\.yaml: credentials\.unused-secret\.value: cannot read .*no-such-secret \(ENOENT\)/,
      /port\.yaml: upstreams\.artifacts\.inject\.bearer: environment variable PORT_TEST_UNSET_ARTIFACTS is not set/,
      // Reachable by no permit: warnings.
      /^warning: .*port\.yaml: credentials\.unused-secret: no permit in .* allows action "assume" on Port::Credential::"unused-secret"/,
      /^warning: .*port\.yaml: credentials\.by-command: no permit/,
      /^warning: .*port\.yaml: upstreams\.lonely: no permit in .* allows action "proxy" on Port::Upstream::"lonely"/,
    ];
    for (const re of expected) expect(out.filter((l) => re.test(l)), `${re}\n${out.join('\n')}`).toHaveLength(1);
    // Nothing else, and nothing about what is fine.
    expect(out.some((l) => /deploy-token:|credentials\.deploy-token|upstreams\.artifacts: no permit|npm-publish: no permit/.test(l))).toBe(false);
    expect(r.stdout).toMatch(/port\.yaml: \d+ problems, 4 warnings/);
  }, SLOW);

  it('lists every schema error, and still checks the policies against the names in the file', async () => {
    const config = {
      ...base(),
      server: { listen: 'localhost', public_url: 'port.acme.test' },
      issuer: { token_tll: '5m' },
    };
    const policies = {
      ...GOOD_POLICIES,
      'refs.cedar': '@id("typo")\npermit (principal, action == Port::Action::"assume", resource == Port::Credential::"deploy-tokn");\n',
    };
    const file = writeSetup('schema', config, policies);
    const r = await runPort(['config', 'check', '-c', file]);
    expect(r.code).toBe(1);
    const out = lines(r.stderr);
    expect(out.filter((l) => /server\.listen: /.test(l))).toHaveLength(1);
    expect(out.filter((l) => /server\.public_url: /.test(l))).toHaveLength(1);
    expect(out.filter((l) => /issuer\.token_tll: .*token_ttl/.test(l))).toHaveLength(1);
    expect(out.filter((l) => /Port::Credential::"deploy-tokn" is not a credential/.test(l))).toHaveLength(1);
    for (const l of out) expect(l, 'one finding per line, each naming the file').toMatch(/port\.yaml|\.cedar/);
  }, SLOW);

  it('reports YAML syntax errors with line and column (exit 1), an unreadable file or bad usage with exit 2', async () => {
    const file = writeSetup('yaml', 'server:\n  listen: 127.0.0.1:0\n  public_url: [https://port.acme.test\nbuildkite: {}\n', GOOD_POLICIES);
    const r = await runPort(['config', 'check', '-c', file]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`^${file}:\\d+:\\d+: invalid YAML: `, 'm'));

    const missing = await runPort(['config', 'check', '-c', join(dir, 'nowhere.yaml')]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('nowhere.yaml: no such file');

    const usage = await runPort(['config', 'check', '-c', file, '--timeout', 'soon']);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain('--timeout soon');
  }, SLOW);

  it('with --reachability tries Buildkite, the REST API and every upstream, one line each', async () => {
    const config = {
      ...base(),
      buildkite: { organization: 'acme', issuer: sim.issuer, jwks_url: sim.jwksUrl, api_url: apiUrl, api_token: 'env:PORT_TEST_BK_TOKEN' },
      upstreams: {
        up: { url: upstreamUrl },
        down: { url: closedUrl },
      },
    };
    const policies = {
      ...GOOD_POLICIES,
      'relay.cedar': '@id("relay")\npermit (principal is Port::Job, action == Port::Action::"proxy", resource is Port::Upstream);\n',
    };
    const file = writeSetup('reach', config, policies);
    const r = await runPort(['config', 'check', '-c', file, '--reachability', '--timeout', '3'], { env: { PORT_TEST_BK_TOKEN: GOOD_TOKEN } });
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^buildkite\.jwks_url: http:\/\/127\.0\.0\.1:\d+\/\S+: reachable, \d+ signing keys?$/m);
    expect(r.stdout).toMatch(/^upstreams\.up: http:\/\/127\.0\.0\.1:\d+: reachable \(HEAD \/ answered HTTP 404\)$/m);
    expect(r.stderr).toMatch(/^upstreams\.down: http:\/\/127\.0\.0\.1:\d+: unreachable: connection refused/m);
    // The token works but lacks scopes Port uses: a warning naming them.
    expect(r.stderr).toMatch(/^warning: buildkite\.api_url: .*\/v2\/access-token: reachable, token accepted, but it lacks the scope read_organizations that Port uses/m);
    expect(r.stdout + r.stderr).not.toContain(GOOD_TOKEN);

    const refused = await runPort(['config', 'check', '-c', file, '--reachability', '--timeout', '3'], { env: { PORT_TEST_BK_TOKEN: 'not-the-token' } });
    expect(refused.stderr).toMatch(/^buildkite\.api_url: .*: answered 401: Buildkite does not accept buildkite\.api_token/m);
  }, SLOW);
});

describe('port config schema', () => {
  it('prints the JSON Schema of port.yaml', async () => {
    const r = await runPort(['config', 'schema']);
    expect(r.code).toBe(0);
    const schema = JSON.parse(r.stdout) as { type?: string; properties?: Record<string, unknown> };
    expect(schema.type).toBe('object');
    expect(Object.keys(schema.properties ?? {})).toEqual(expect.arrayContaining(['server', 'buildkite', 'credentials', 'upstreams']));
  }, SLOW);
});
