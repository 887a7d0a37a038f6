import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { BuildkiteSimulator } from '../../src/sim/index.js';
import { TEST_POLICIES } from '../helpers/port-harness.js';
import { runPort, spawnPort } from '../helpers/spawn-port.js';

let sim: BuildkiteSimulator;
let dir: string;
beforeAll(async () => {
  sim = await BuildkiteSimulator.start({ organization: 'acme' });
  dir = mkdtempSync(join(tmpdir(), 'port-serve-'));
});
afterAll(async () => {
  await sim?.close();
  rmSync(dir, { recursive: true, force: true });
});

function writeConfig(name: string, policies: Record<string, string>, extra: Record<string, unknown> = {}): string {
  const base = join(dir, name);
  mkdirSync(join(base, 'policies'), { recursive: true });
  for (const [f, text] of Object.entries(policies)) writeFileSync(join(base, 'policies', f), text);
  const file = join(base, 'port.yaml');
  writeFileSync(
    file,
    stringify({
      server: { listen: '127.0.0.1:0', public_url: 'https://port.acme.test', log_level: 'info' },
      buildkite: { organization: 'acme', issuer: sim.issuer, jwks_url: sim.jwksUrl, audience: 'https://port.acme.test' },
      credentials: { 'deploy-token': { type: 'port_token', audience: 'https://deploy.acme.test' } },
      ...extra,
    }),
  );
  return file;
}

describe('port serve', () => {
  it('refuses an invalid config before listening, naming the key and the fix', async () => {
    const file = writeConfig('bad-config', TEST_POLICIES, { issuer: { token_tll: '5m' } });
    const r = await runPort(['serve', '--create-store', '-c', file]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('issuer.token_tll: unknown key; did you mean "token_ttl"?');
  });

  it('refuses an invalid policy set with file and line', async () => {
    const file = writeConfig('bad-policy', {
      ...TEST_POLICIES,
      'broken.cedar': '@id("broken")\npermit (principal, action, resource)\nwhen { principal.no_such_attribute == "x" };\n',
    });
    const r = await runPort(['serve', '--create-store', '-c', file]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/broken\.cedar:3:\d+: .*no_such_attribute/);
  });

  it('serves exchanges, and on SIGHUP keeps its last good policy set or takes a new good one', async () => {
    const file = writeConfig('good', TEST_POLICIES);
    const p = spawnPort(['serve', '--create-store', '-c', file]);
    try {
      const [, url] = await p.waitFor(/"url":"(http:\/\/127\.0\.0\.1:\d+)"/);
      expect((await fetch(`${url}/readyz`)).status).toBe(200);
      const seen: string[] = [];
      const exchange = async (init = {}) => {
        const token = await sim.mintToken(sim.createJob({ pipelineSlug: 'deploy', branch: 'main', ...init }), { audience: 'https://port.acme.test' });
        seen.push(token);
        // `port token exchange` reads the Buildkite token from stdin, as in a job.
        return runPort(['token', 'exchange', '--url', url!, '--scope', 'deploy-token'], { input: token });
      };
      const ok = await exchange();
      expect(ok.code).toBe(0);
      expect(ok.stdout.trim().split('.')).toHaveLength(3);

      // A broken file and SIGHUP: refused, logged with file and line, old set still decides.
      const policyFile = join(dir, 'good', 'policies', 'credentials.cedar');
      writeFileSync(policyFile, '@id("x")\npermit (principal, action, resource) when { nonsense };\n');
      p.child.kill('SIGHUP');
      await p.waitFor(/policy reload refused/);
      expect((await exchange()).code).toBe(0);

      // A good change: deploy-token is now forbidden to everyone.
      writeFileSync(policyFile, '@id("no-deploys")\n@reason("deploys are frozen")\nforbid (principal, action == Port::Action::"assume", resource);\n');
      p.child.kill('SIGHUP');
      await p.waitFor(/policies reloaded/);
      const frozen = await exchange();
      expect(frozen.code).toBe(1);
      expect(frozen.stderr).toContain('403 access_denied');
      expect(frozen.stderr).toContain('deploys are frozen');
      // The server's own log never holds a token (neither Buildkite's nor Port's).
      for (const t of [...seen, ok.stdout.trim()]) expect(p.stdout() + p.stderr()).not.toContain(t.split('.')[1]);
    } finally {
      await p.stop();
    }
  });
});
