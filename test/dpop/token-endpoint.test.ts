import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HostKey } from '../../src/dpop/host-key.js';
import { decodePart } from '../helpers/forge.js';
import type { RelayHarness } from '../helpers/relay-harness.js';
import { b64json, craftProof, createProof, newHostKey, proofClaims, rawRequest, startDpopRelay } from './support.js';

/**
 * RFC 9449 §5 at /oauth/token: a request with a valid DPoP proof gets a Port token bound to
 * the proof's key (`token_type: DPoP`, `cnf.jkt`), which the relay then accepts only with
 * proofs made with that key. An invalid proof is 400 `invalid_dpop_proof`, before the
 * Buildkite token is looked at (so it is not spent).
 */
let h: RelayHarness;
let key: HostKey;
const TOKEN_URL = 'https://port.acme.test/oauth/token';

beforeAll(async () => {
  h = await startDpopRelay();
  key = await newHostKey();
});
afterAll(async () => {
  await h?.close();
});

const FORM = (subject: string) =>
  new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange', subject_token: subject, subject_token_type: 'urn:ietf:params:oauth:token-type:jwt' }).toString();

async function exchange(subject: string, dpop?: string | string[]) {
  return rawRequest(`${h.url}/oauth/token`, 'POST', { 'content-type': 'application/x-www-form-urlencoded', ...(dpop !== undefined ? { dpop } : {}) }, FORM(subject));
}

const deployJob = () => h.sim.createJob({ pipelineSlug: 'deploy', branch: 'main' });
const subjectFor = async () => h.sim.mintToken(deployJob(), { audience: h.audience });

describe('/oauth/token with a DPoP proof', () => {
  it('binds the token to the proof key: token_type DPoP, cnf.jkt, and the relay then needs proofs', async () => {
    const r = await exchange(await subjectFor(), await createProof(key, { method: 'POST', url: TOKEN_URL }));
    expect(r.status).toBe(200);
    expect(r.body.token_type).toBe('DPoP');
    const token = r.body.access_token as string;
    expect(decodePart(token, 1).cnf).toEqual({ jkt: key.jkt });

    const path = '/files/bound.txt';
    const bearer = await rawRequest(h.relayUrl(path), 'GET', { authorization: `Bearer ${token}` });
    expect(bearer.status).toBe(401);
    expect(bearer.body.error_description).toMatch(/bound to a host key/);
    const proof = await createProof(key, { method: 'GET', url: `https://port.acme.test/relay${path}`, accessToken: token });
    expect((await rawRequest(h.relayUrl(path), 'GET', { authorization: `DPoP ${token}`, dpop: proof })).status).toBe(200);

    // RFC 9449 §6.2: introspection says so too.
    const intro = await h.post('/oauth/introspect', { token }, { authorization: `Bearer ${token}` });
    expect(intro.body).toMatchObject({ active: true, token_type: 'DPoP', cnf: { jkt: key.jkt } });
  });

  it('without a proof, the token is a bearer token with no cnf', async () => {
    const r = await exchange(await subjectFor());
    expect(r.status).toBe(200);
    expect(r.body.token_type).toBe('Bearer');
    expect(decodePart(r.body.access_token, 1).cnf).toBeUndefined();
  });

  it('refuses an invalid proof with 400 invalid_dpop_proof, logs it, and leaves the Buildkite token unspent', async () => {
    const subject = await subjectFor();
    const now = Math.floor(Date.now() / 1000);
    const bent = (c: Record<string, unknown>) => craftProof({ signWith: key.privateKey, alg: 'ES256', header: { typ: 'dpop+jwt', jwk: key.publicJwk }, claims: c });
    const replayed = await createProof(key, { method: 'POST', url: TOKEN_URL });
    expect((await exchange(await subjectFor(), replayed)).status).toBe(200);
    const cases: [string, string | string[], RegExp][] = [
      ['another URL', await createProof(key, { method: 'POST', url: 'https://port.acme.test/relay/files/x' }), /another URL than https:\/\/port\.acme\.test\/oauth\/token/],
      ['another host', await createProof(key, { method: 'POST', url: 'https://evil.example/oauth/token' }), /another URL/],
      ['another method', await createProof(key, { method: 'GET', url: TOKEN_URL }), /another method than POST/],
      ['stale', await bent({ ...proofClaims('POST', TOKEN_URL), iat: now - 3600 }), /older than/],
      ['replayed', replayed, /already used/],
      ['two proofs', [await createProof(key, { method: 'POST', url: TOKEN_URL }), await createProof(key, { method: 'POST', url: TOKEN_URL })], /more than one/],
      ['alg none', `${b64json({ typ: 'dpop+jwt', alg: 'none', jwk: key.publicJwk })}.${b64json(proofClaims('POST', TOKEN_URL))}.`, /alg is not allowed/],
      ['empty', '', /no DPoP proof/],
    ];
    const before = (await h.port.store.decisions.last())?.seq ?? 0;
    for (const [what, proof, message] of cases) {
      const r = await exchange(subject, proof);
      expect(r.status, what).toBe(400);
      expect(r.body.error, what).toBe('invalid_dpop_proof');
      expect(r.body.error_description, what).toMatch(message);
      expect(r.headers['cache-control'], what).toBe('no-store');
    }
    await h.port.log.flush();
    const records = (await h.port.store.decisions.read(before, 1000)).map((e) => e.record);
    expect(records.some((d) => d.action === 'exchange' && d.decision === 'deny' && (d.context as { check?: string }).check === 'dpop_htu_mismatch')).toBe(true);
    expect(JSON.stringify(records)).not.toContain(replayed);

    // The Buildkite token was never looked at: it still exchanges.
    const ok = await exchange(subject, await createProof(key, { method: 'POST', url: TOKEN_URL }));
    expect(ok.status).toBe(200);
    expect(ok.body.token_type).toBe('DPoP');
  });
});
