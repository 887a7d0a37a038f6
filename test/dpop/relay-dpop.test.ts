import { createHash } from 'node:crypto';
import { calculateJwkThumbprint, compactVerify, exportJWK, generateKeyPair, importJWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HostKey } from '../../src/dpop/host-key.js';
import type { RelayHarness } from '../helpers/relay-harness.js';
import { b64json, boundToken, craftProof, createProof, newEd25519Key, newHostKey, proofClaims, rawRequest, startDpopRelay } from './support.js';

/**
 * The relay with a Port token bound to a host key (RFC 9449 `cnf.jkt`): every request needs
 * `Authorization: DPoP` and a fresh proof for it, made with that key. The attack corpus
 * bends one thing at a time from a valid proof; each must be refused with 401.
 */
let h: RelayHarness;
let key: HostKey;
let token: string;
const PUBLIC = 'https://port.acme.test';
const DPOP_CHALLENGE = /^DPoP error="invalid_dpop_proof", algs="ES256 EdDSA"$/;

beforeAll(async () => {
  h = await startDpopRelay();
  key = await newHostKey();
  token = await boundToken(h, h.sim.createJob({ pipelineSlug: 'deploy', branch: 'main' }), key.jkt);
});
afterAll(async () => {
  await h?.close();
});

/** GET (or `method`) on the relay with the given Authorization and DPoP fields. */
async function relay(path: string, headers: Record<string, string | string[]>, method = 'GET', body?: string) {
  return rawRequest(h.relayUrl(path), method, headers, body);
}

/** A valid proof for `method` `path` (with `token`'s ath). */
function proof(path: string, method = 'GET', k: HostKey = key, accessToken = token): Promise<string> {
  return createProof(k, { method, url: `${PUBLIC}/relay${path}`, accessToken });
}

/** A proof with the bound key's jwk in the header, its claims bent by `bend`. */
async function bentProof(path: string, bend: (c: Record<string, unknown>) => Record<string, unknown>, method = 'GET'): Promise<string> {
  return craftProof({ signWith: key.privateKey, alg: 'ES256', header: { typ: 'dpop+jwt', jwk: key.publicJwk }, claims: bend(proofClaims(method, `${PUBLIC}/relay${path}`, token)) });
}

function expectProofRefused(r: { status: number; headers: Record<string, unknown>; body: any }, message: RegExp): void {
  expect(r.status).toBe(401);
  expect(r.body.error).toBe('invalid_dpop_proof');
  expect(r.body.error_description).toMatch(message);
  expect(r.headers['www-authenticate']).toMatch(DPOP_CHALLENGE);
  // Never the token or the proof in an answer.
  expect(JSON.stringify(r.body)).not.toContain(token.slice(-20));
}

describe('a bound token at the relay', () => {
  it('is accepted with the DPoP scheme and a proof, and neither its proof nor the token reaches the upstream', async () => {
    const p = await proof('/files/readme.txt');
    const r = await relay('/files/readme.txt', { authorization: `DPoP ${token}`, dpop: p });
    expect(r.status).toBe(200);
    const seen = h.upstream.requests.at(-1)!;
    expect(seen.url).toBe('/base/readme.txt');
    expect(seen.headers.dpop).toBeUndefined();
    expect(seen.rawHeaders.join('\n')).not.toContain(token);
    expect(seen.rawHeaders.join('\n')).not.toContain(p);
  });

  it('accepts a proof without the query of a request that has one (RFC 9449 §4.3: htu ignores the query)', async () => {
    const r = await relay('/files/list?page=2&q=a', { authorization: `DPoP ${token}`, dpop: await proof('/files/list') });
    expect(r.status).toBe(200);
    expect(h.upstream.requests.at(-1)!.url).toBe('/base/list?page=2&q=a');
  });

  it('compares htu after normalising scheme and host case and the default port', async () => {
    for (const base of ['HTTPS://PORT.ACME.TEST', 'https://Port.Acme.Test:443']) {
      const p = await createProof(key, { method: 'GET', url: `${base}/relay/files/norm.txt`, accessToken: token });
      expect((await relay('/files/norm.txt', { authorization: `DPoP ${token}`, dpop: p })).status).toBe(200);
    }
    const encoded = await createProof(key, { method: 'GET', url: `${PUBLIC}/relay/files/%7euser`, accessToken: token });
    expect((await relay('/files/~user', { authorization: `DPoP ${token}`, dpop: encoded })).status).toBe(200);
  });

  it('accepts a proof made with an Ed25519 key (EdDSA) for a token bound to it', async () => {
    const ed = await newEd25519Key();
    const edToken = await boundToken(h, h.sim.createJob({ pipelineSlug: 'deploy', branch: 'main' }), ed.jkt);
    const p = await craftProof({ signWith: ed.privateKey, alg: 'EdDSA', header: { typ: 'dpop+jwt', jwk: ed.publicJwk }, claims: proofClaims('GET', `${PUBLIC}/relay/files/ed.txt`, edToken) });
    expect((await relay('/files/ed.txt', { authorization: `DPoP ${edToken}`, dpop: p })).status).toBe(200);
  });
});

describe('the attack corpus: refused with 401 invalid_dpop_proof', () => {
  it('no proof', async () => {
    expectProofRefused(await relay('/files/a', { authorization: `DPoP ${token}` }), /no DPoP proof/);
  });

  it('a proof signed by another key (its own jwk, so the signature verifies)', async () => {
    const other = await newHostKey();
    expectProofRefused(await relay('/files/a', { authorization: `DPoP ${token}`, dpop: await proof('/files/a', 'GET', other) }), /another key than the one the token is bound to/);
  });

  it("a proof whose jwk header is the bound key but signed by another key", async () => {
    const other = await newHostKey();
    const p = await craftProof({ signWith: other.privateKey, alg: 'ES256', header: { typ: 'dpop+jwt', jwk: key.publicJwk }, claims: proofClaims('GET', `${PUBLIC}/relay/files/a`, token) });
    expectProofRefused(await relay('/files/a', { authorization: `DPoP ${token}`, dpop: p }), /signature does not verify/);
  });

  it('a replayed proof (same jti twice), also on another path', async () => {
    const p = await proof('/files/once');
    expect((await relay('/files/once', { authorization: `DPoP ${token}`, dpop: p })).status).toBe(200);
    expectProofRefused(await relay('/files/once', { authorization: `DPoP ${token}`, dpop: p }), /already used/);
    // A fresh proof reusing the jti is refused too: the jti is what is single use.
    const claims = proofClaims('GET', `${PUBLIC}/relay/files/twice`, token);
    const first = await craftProof({ signWith: key.privateKey, alg: 'ES256', header: { typ: 'dpop+jwt', jwk: key.publicJwk }, claims });
    const again = await craftProof({ signWith: key.privateKey, alg: 'ES256', header: { typ: 'dpop+jwt', jwk: key.publicJwk }, claims: { ...claims, iat: (claims.iat as number) - 1 } });
    expect((await relay('/files/twice', { authorization: `DPoP ${token}`, dpop: first })).status).toBe(200);
    expectProofRefused(await relay('/files/twice', { authorization: `DPoP ${token}`, dpop: again }), /already used/);
  });

  it('htm of another method, or another case', async () => {
    expectProofRefused(await relay('/files/a', { authorization: `DPoP ${token}`, dpop: await proof('/files/a', 'POST') }), /another method than GET/);
    expectProofRefused(await relay('/files/a', { authorization: `DPoP ${token}`, dpop: await bentProof('/files/a', (c) => ({ ...c, htm: 'get' })) }), /another method/);
  });

  it('htu of another path, host, scheme, port, or with a query, fragment or credentials', async () => {
    const cases = [
      `${PUBLIC}/relay/files/b`,
      `${PUBLIC}/relay/files/a/`,
      `${PUBLIC}/relay/files/A`,
      'https://port.acme.test.evil.example/relay/files/a',
      'https://evil.example/relay/files/a',
      'http://port.acme.test/relay/files/a',
      'https://port.acme.test:8443/relay/files/a',
      `${PUBLIC}/relay/files/a?x=1`,
      `${PUBLIC}/relay/files/a?`,
      `${PUBLIC}/relay/files/a#frag`,
      'https://user@port.acme.test/relay/files/a',
      `${PUBLIC}/relay/files/a\n`,
      'port.acme.test/relay/files/a',
      '/relay/files/a',
    ];
    for (const htu of cases) {
      const r = await relay('/files/a', { authorization: `DPoP ${token}`, dpop: await bentProof('/files/a', (c) => ({ ...c, htu })) });
      expect(r.status, htu).toBe(401);
      expect(r.body.error_description, htu).toMatch(/another URL than https:\/\/port\.acme\.test\/relay\/files\/a/);
    }
  });

  it('a proof for one path sent with a request whose query or dot segments try to reach another', async () => {
    // The proof names /files/public; the request goes to /files/admin with the public path hidden in its query.
    const p = await proof('/files/public');
    expectProofRefused(await relay('/files/admin?/files/public', { authorization: `DPoP ${token}`, dpop: p }), /another URL/);
    const q = await proof('/files/public');
    expectProofRefused(await relay('/files/public/../secret', { authorization: `DPoP ${token}`, dpop: q }), /another URL/);
  });

  it('a stale or future iat (beyond attestation.dpop_max_age, 60 s by default)', async () => {
    const now = Math.floor(Date.now() / 1000);
    expectProofRefused(await relay('/files/a', { authorization: `DPoP ${token}`, dpop: await bentProof('/files/a', (c) => ({ ...c, iat: now - 120 })) }), /older than 60 s/);
    expectProofRefused(await relay('/files/a', { authorization: `DPoP ${token}`, dpop: await bentProof('/files/a', (c) => ({ ...c, iat: now + 120 })) }), /in the future/);
    expectProofRefused(await relay('/files/a', { authorization: `DPoP ${token}`, dpop: await bentProof('/files/a', (c) => ({ ...c, iat: String(now) })) }), /iat/);
  });

  it('missing or incorrect ath', async () => {
    expectProofRefused(await relay('/files/a', { authorization: `DPoP ${token}`, dpop: await bentProof('/files/a', ({ ath: _ath, ...c }) => c) }), /no ath claim/);
    const other = createHash('sha256').update('another token').digest('base64url');
    expectProofRefused(await relay('/files/a', { authorization: `DPoP ${token}`, dpop: await bentProof('/files/a', (c) => ({ ...c, ath: other })) }), /ath is not the hash/);
  });

  it('missing jti, htm or htu, or a jti longer than 256 characters', async () => {
    for (const name of ['jti', 'htm', 'htu']) {
      const r = await relay('/files/a', { authorization: `DPoP ${token}`, dpop: await bentProof('/files/a', (c) => Object.fromEntries(Object.entries(c).filter(([k]) => k !== name))) });
      expectProofRefused(r, new RegExp(`no ${name} claim`));
    }
    expectProofRefused(await relay('/files/a', { authorization: `DPoP ${token}`, dpop: await bentProof('/files/a', (c) => ({ ...c, jti: 'j'.repeat(257) })) }), /longer than 256/);
  });

  it('alg none, HS256 keyed with the public key, and RS256', async () => {
    const claims = proofClaims('GET', `${PUBLIC}/relay/files/a`, token);
    const none = `${b64json({ typ: 'dpop+jwt', alg: 'none', jwk: key.publicJwk })}.${b64json(claims)}.`;
    expectProofRefused(await relay('/files/a', { authorization: `DPoP ${token}`, dpop: none }), /alg is not allowed/);
    const secret = new TextEncoder().encode(JSON.stringify(key.publicJwk));
    const hs = await craftProof({ signWith: secret, alg: 'HS256', header: { typ: 'dpop+jwt', jwk: key.publicJwk }, claims });
    expectProofRefused(await relay('/files/a', { authorization: `DPoP ${token}`, dpop: hs }), /alg is not allowed/);
    const rsa = await generateKeyPair('RS256', { extractable: true });
    const rs = await craftProof({ signWith: rsa.privateKey, alg: 'RS256', header: { typ: 'dpop+jwt', jwk: await exportJWK(rsa.publicKey) }, claims });
    expectProofRefused(await relay('/files/a', { authorization: `DPoP ${token}`, dpop: rs }), /alg is not allowed/);
  });

  it('a private key in the jwk header, a jwk of another key type, jku/x5u pointers, another typ', async () => {
    const claims = () => proofClaims('GET', `${PUBLIC}/relay/files/a`, token);
    const priv = await exportJWK(key.privateKey);
    const withD = await craftProof({ signWith: key.privateKey, alg: 'ES256', header: { typ: 'dpop+jwt', jwk: priv }, claims: claims() });
    expectProofRefused(await relay('/files/a', { authorization: `DPoP ${token}`, dpop: withD }), /private key material \("d"\)/);
    const ed = await newEd25519Key();
    const mixed = await craftProof({ signWith: key.privateKey, alg: 'ES256', header: { typ: 'dpop+jwt', jwk: ed.publicJwk }, claims: claims() });
    expectProofRefused(await relay('/files/a', { authorization: `DPoP ${token}`, dpop: mixed }), /not a EC P-256 public key/);
    const jku = await craftProof({ signWith: key.privateKey, alg: 'ES256', header: { typ: 'dpop+jwt', jwk: key.publicJwk, jku: 'https://evil.example/jwks' }, claims: claims() });
    expectProofRefused(await relay('/files/a', { authorization: `DPoP ${token}`, dpop: jku }), /carries "jku"/);
    const typ = await craftProof({ signWith: key.privateKey, alg: 'ES256', header: { typ: 'JWT', jwk: key.publicJwk }, claims: claims() });
    expectProofRefused(await relay('/files/a', { authorization: `DPoP ${token}`, dpop: typ }), /typ is not dpop\+jwt/);
    const nojwk = await craftProof({ signWith: key.privateKey, alg: 'ES256', header: { typ: 'dpop+jwt' }, claims: claims() });
    expectProofRefused(await relay('/files/a', { authorization: `DPoP ${token}`, dpop: nojwk }), /no jwk object/);
  });

  it('an Ed25519 jwk of small order, for which anyone can forge a signature without a private key', async () => {
    // RFC 8032 §5.1.7 verification of R = identity, S = 0 holds whenever [k]A is the identity:
    // always for A = identity, for 1 in 2, 4 or 8 messages for the other small-order points.
    const p = 2n ** 255n - 19n;
    const order8 = 2707385501144840649318225287225658788936804267575313519463743609750303402022n;
    const enc = (y: bigint, negative = false) => {
      const b = Buffer.alloc(32);
      for (let i = 0, v = y; i < 32; i++, v >>= 8n) b[i] = Number(v & 0xffn);
      if (negative) b[31]! |= 0x80;
      return b.toString('base64url');
    };
    const signature = Buffer.concat([Buffer.from([1]), Buffer.alloc(63)]).toString('base64url');
    for (const x of [enc(1n), enc(p + 1n), enc(0n), enc(p - 1n), enc(order8), enc(p - order8, true)]) {
      const jwk = { kty: 'OKP', crv: 'Ed25519', x };
      const weakToken = await boundToken(h, h.sim.createJob({ pipelineSlug: 'deploy', branch: 'main' }), await calculateJwkThumbprint(jwk, 'sha256'));
      const verifyKey = await importJWK(jwk, 'EdDSA');
      let forged: string | undefined;
      for (let i = 0; i < 256 && forged === undefined; i++) {
        const candidate = `${b64json({ typ: 'dpop+jwt', alg: 'EdDSA', jwk })}.${b64json(proofClaims('GET', `${PUBLIC}/relay/files/a`, weakToken))}.${signature}`;
        forged = await compactVerify(candidate, verifyKey).then(() => candidate, () => undefined);
      }
      expect(forged, `no forgery found for x=${x}`).toBeDefined();
      expectProofRefused(await relay('/files/a', { authorization: `DPoP ${weakToken}`, dpop: forged! }), /jwk is not a valid public key/);
    }
  });

  it('a header with a duplicate member', async () => {
    const claims = proofClaims('GET', `${PUBLIC}/relay/files/a`, token);
    const header = `{"typ":"dpop+jwt","alg":"none","alg":"ES256","jwk":${JSON.stringify(key.publicJwk)}}`;
    const forged = `${Buffer.from(header).toString('base64url')}.${b64json(claims)}.AAAA`;
    expectProofRefused(await relay('/files/a', { authorization: `DPoP ${token}`, dpop: forged }), /names a member twice/);
  });

  it('two DPoP header fields, or two proofs folded into one', async () => {
    const [a, b] = [await proof('/files/a'), await proof('/files/a')];
    expectProofRefused(await relay('/files/a', { authorization: `DPoP ${token}`, dpop: [a, b] }), /more than one DPoP header/);
    expectProofRefused(await relay('/files/a', { authorization: `DPoP ${token}`, dpop: `${a}, ${b}` }), /more than one DPoP header/);
  });

  it('an oversized proof', async () => {
    const big = await bentProof('/files/a', (c) => ({ ...c, pad: 'x'.repeat(5000) }));
    expectProofRefused(await relay('/files/a', { authorization: `DPoP ${token}`, dpop: big }), /larger than 4096 bytes/);
  });

  it('garbage', async () => {
    for (const junk of ['not-a-jwt', 'a.b.c', `${b64json([1])}.${b64json({})}.x`]) {
      expect((await relay('/files/a', { authorization: `DPoP ${token}`, dpop: junk })).body.error).toBe('invalid_dpop_proof');
    }
  });
});

describe('the scheme', () => {
  it('refuses a bound token sent as Bearer or as the Basic-auth password, saying it is bound to a host key', async () => {
    const basic = Buffer.from(`x-token:${token}`).toString('base64');
    for (const authorization of [`Bearer ${token}`, `Basic ${basic}`]) {
      // Even with a valid proof beside it: the scheme is what tells a downgrade.
      const r = await relay('/files/a', { authorization, dpop: await proof('/files/a') });
      expect(r.status).toBe(401);
      expect(r.body.error).toBe('invalid_token');
      expect(r.body.error_description).toMatch(/bound to a host key/);
      expect(r.headers['www-authenticate']).toBe('DPoP error="invalid_token", algs="ES256 EdDSA"');
    }
  });

  it('refuses an unbound token sent with the DPoP scheme, and takes it as Bearer', async () => {
    const unbound = await boundToken(h, h.sim.createJob({ pipelineSlug: 'deploy', branch: 'main' }), undefined);
    const other = await newHostKey();
    const p = await createProof(other, { method: 'GET', url: `${PUBLIC}/relay/files/a`, accessToken: unbound });
    const r = await relay('/files/a', { authorization: `DPoP ${unbound}`, dpop: p });
    expect(r.status).toBe(401);
    expect(r.body).toMatchObject({ error: 'invalid_token' });
    expect(r.body.error_description).toMatch(/not bound to a key.*Bearer/);
    expect((await relay('/files/a', { authorization: `Bearer ${unbound}` })).status).toBe(200);
  });

  it('advertises the DPoP scheme with its algorithms when no credential is sent', async () => {
    const r = await relay('/files/a', {});
    expect(r.status).toBe(401);
    expect(r.headers['www-authenticate']).toContain('DPoP algs="ES256 EdDSA"');
  });

  it('never lets a request without a proof ride on a cached allow of the same request', async () => {
    const path = '/files/cached.txt';
    expect((await relay(path, { authorization: `DPoP ${token}`, dpop: await proof(path) })).status).toBe(200);
    const before = h.upstream.requests.length;
    expectProofRefused(await relay(path, { authorization: `DPoP ${token}` }), /no DPoP proof/);
    expect((await relay(path, { authorization: `Bearer ${token}` })).status).toBe(401);
    expect(h.upstream.requests.length).toBe(before);
    // And with a fresh proof, the cached decision serves again.
    expect((await relay(path, { authorization: `DPoP ${token}`, dpop: await proof(path) })).status).toBe(200);
  });

  it('streams a POST body with a proof for POST', async () => {
    const path = '/files/uploads/report.txt';
    const r = await relay(path, { authorization: `DPoP ${token}`, dpop: await proof(path, 'POST'), 'content-type': 'text/plain' }, 'POST', 'hello through the relay');
    expect(r.status).toBe(200);
    expect(h.upstream.requests.at(-1)!.body?.toString()).toBe('hello through the relay');
  });
});

describe('a copied token tried without its key', () => {
  it('counts against its source like a bad token: past the refusal limit, 429', async () => {
    const strict = await startDpopRelay({ refusal_rate_limit: { burst: 3, per_minute: 1 } });
    try {
      const k = await newHostKey();
      const copied = await boundToken(strict, strict.sim.createJob({ pipelineSlug: 'deploy', branch: 'main' }), k.jkt);
      const statuses: number[] = [];
      for (let i = 0; i < 5; i++) statuses.push((await rawRequest(strict.relayUrl('/files/a'), 'GET', { authorization: `Bearer ${copied}` })).status);
      expect(statuses).toEqual([401, 401, 401, 429, 429]);
    } finally {
      await strict.close();
    }
  });
});
