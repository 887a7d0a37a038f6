import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HostKey } from '../../src/dpop/host-key.js';
import type { Harness } from '../helpers/port-harness.js';
import { startCredsHarness } from '../credentials/support.js';
import { boundToken, createProof, newHostKey, rawRequest } from './support.js';

/**
 * `POST /v1/credentials/{name}` with a Port token bound to a host key: only as
 * `Authorization: DPoP` with a proof for this URL made with that key; every refusal is a
 * decision record and a 401 with the DPoP challenge (RFC 9449 §7.1).
 */
let h: Harness;
let key: HostKey;
let token: string;
const PUBLIC = 'https://port.acme.test';

beforeAll(async () => {
  h = await startCredsHarness({ server: { listen: '127.0.0.1:0', public_url: PUBLIC, log_level: 'silent', refusal_rate_limit: { burst: 1000, per_minute: 1000 } } });
  key = await newHostKey();
  token = await boundToken(h, h.sim.createJob({ pipelineSlug: 'deploy', branch: 'main' }), key.jkt, ['deploy-token', 'npm-publish']);
});
afterAll(async () => {
  await h?.close();
});

function release(name: string, headers: Record<string, string | string[]>) {
  return rawRequest(`${h.url}/v1/credentials/${name}`, 'POST', headers);
}

const proofFor = (name: string, k: HostKey = key) => createProof(k, { method: 'POST', url: `${PUBLIC}/v1/credentials/${name}`, accessToken: token });

describe('a bound Port token at /v1/credentials', () => {
  it('releases the credential with the DPoP scheme and a proof for its URL', async () => {
    const r = await release('deploy-token', { authorization: `DPoP ${token}`, dpop: await proofFor('deploy-token') });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ name: 'deploy-token', token_type: 'Bearer' });
    expect(typeof r.body.access_token).toBe('string');
  });

  it('refuses it as Bearer, with the DPoP challenge and a message saying it is bound', async () => {
    const r = await release('deploy-token', { authorization: `Bearer ${token}`, dpop: await proofFor('deploy-token') });
    expect(r.status).toBe(401);
    expect(r.body).toMatchObject({ error: 'invalid_token' });
    expect(r.body.error_description).toMatch(/bound to a host key/);
    expect(r.headers['www-authenticate']).toBe('DPoP error="invalid_token", algs="ES256 EdDSA"');
  });

  it('refuses no proof, a proof for another credential, by another key, or replayed — each logged with its check', async () => {
    const before = (await h.port.store.decisions.last())?.seq ?? 0;
    const replayed = await proofFor('deploy-token');
    expect((await release('deploy-token', { authorization: `DPoP ${token}`, dpop: replayed })).status).toBe(200);
    const cases: [string, Record<string, string>, RegExp, string][] = [
      ['no proof', { authorization: `DPoP ${token}` }, /no DPoP proof/, 'dpop_proof_missing'],
      ['another credential', { authorization: `DPoP ${token}`, dpop: await proofFor('npm-publish') }, /another URL/, 'dpop_htu_mismatch'],
      ['another key', { authorization: `DPoP ${token}`, dpop: await proofFor('deploy-token', await newHostKey()) }, /another key/, 'dpop_key_mismatch'],
      ['replayed', { authorization: `DPoP ${token}`, dpop: replayed }, /already used/, 'dpop_replayed'],
    ];
    for (const [what, headers, message] of cases) {
      const r = await release('deploy-token', headers);
      expect(r.status, what).toBe(401);
      expect(r.body.error, what).toBe('invalid_dpop_proof');
      expect(r.body.error_description, what).toMatch(message);
      expect(r.headers['www-authenticate'], what).toBe('DPoP error="invalid_dpop_proof", algs="ES256 EdDSA"');
    }
    const records = (await h.port.store.decisions.read(before, 1000)).map((e) => e.record);
    for (const [, , , check] of cases) {
      const rec = records.find((d) => (d.context as { check?: string }).check === check);
      expect(rec, check).toMatchObject({ action: 'assume', decision: 'deny', resource: 'Port::Credential::"deploy-token"' });
      expect(rec!.principal).toMatch(/^Port::Job::/);
    }
    expect(JSON.stringify(records)).not.toContain(token);
  });

  it('refuses the DPoP scheme with a token that is not bound, and with a Buildkite token', async () => {
    const unbound = await boundToken(h, h.sim.createJob({ pipelineSlug: 'deploy', branch: 'main' }), undefined, ['deploy-token']);
    const p = await createProof(key, { method: 'POST', url: `${PUBLIC}/v1/credentials/deploy-token`, accessToken: unbound });
    const r = await release('deploy-token', { authorization: `DPoP ${unbound}`, dpop: p });
    expect(r.status).toBe(401);
    expect(r.body.error_description).toMatch(/not bound to a key/);
    expect((await release('deploy-token', { authorization: `Bearer ${unbound}` })).status).toBe(200);

    const bk = await h.sim.mintToken(h.sim.createJob({ pipelineSlug: 'deploy', branch: 'main' }), { audience: h.audience });
    const q = await createProof(key, { method: 'POST', url: `${PUBLIC}/v1/credentials/deploy-token`, accessToken: bk });
    const b = await release('deploy-token', { authorization: `DPoP ${bk}`, dpop: q });
    expect(b.status).toBe(401);
    expect(b.body.error).toBe('invalid_token');
  });
});
