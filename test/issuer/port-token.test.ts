/**
 * Port tokens are signed with node:crypto (src/issuer/sign-jwt.ts) and verified with jose.
 * For each algorithm `issuer.algorithm` allows: jose's `jwtVerify` accepts what Port signs
 * (the round trip a downstream service makes with Port's JWKS), the header and claims are
 * encoded byte for byte as jose's SignJWT encodes them, tokens jose signed still verify,
 * and forgeries — tampered, foreign-keyed, `alg: none`, HS256 keyed with the public key,
 * `crit`, DER-encoded ECDSA — fail.
 */
import { createHmac, createPublicKey, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify, SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import { JOB_IDENTITY } from '../helpers/job-identity.js';
import { sqliteStorePerTest } from '../helpers/temp-sqlite-store.js';
import { PORT_TOKEN_TYP, PortTokenIssuer } from '../../src/issuer/port-token.js';
import { SigningKeys } from '../../src/issuer/signing-keys.js';

const ISSUER = 'https://port.test';
const AUDIENCE = 'https://deploy.test';
const identity = JOB_IDENTITY;
const b64 = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');
const parts = (token: string) => token.split('.') as [string, string, string];

const fresh = sqliteStorePerTest('port-token-');

/** Signs any header and claims with a node:crypto key, as an attacker holding it would. */
function forge(key: KeyObject, header: Record<string, unknown>, claims: Record<string, unknown>, dsaEncoding: 'ieee-p1363' | 'der' = 'ieee-p1363'): string {
  const input = `${b64(header)}.${b64(claims)}`;
  const hash = key.asymmetricKeyType === 'ed25519' ? null : 'sha256';
  return `${input}.${sign(hash, Buffer.from(input), { key, dsaEncoding }).toString('base64url')}`;
}

for (const algorithm of ['ES256', 'EdDSA'] as const) {
  describe(`Port tokens signed with ${algorithm}`, () => {
    async function setup() {
      const keys = await SigningKeys.open(fresh.store, { algorithm, rotation: 3600, overlap: 900 });
      const issuer = new PortTokenIssuer(keys, ISSUER);
      const minted = await issuer.mint(identity, { audience: AUDIENCE, scopes: ['deploy-token'], ttl: 900, creator: 'Dev@Acme.Test', jkt: 'thumb' });
      return { keys, issuer, minted, jwks: createLocalJWKSet(keys.jwks()) };
    }

    it("round trip: jose's jwtVerify accepts it with Port's JWKS, and Port's verify returns the minted claims", async () => {
      const { keys, issuer, minted, jwks } = await setup();
      const { payload, protectedHeader } = await jwtVerify(minted.token, jwks, { issuer: ISSUER, audience: AUDIENCE, typ: PORT_TOKEN_TYP, algorithms: [algorithm] });
      expect(protectedHeader).toEqual({ alg: algorithm, kid: keys.signer().kid, typ: PORT_TOKEN_TYP });
      expect(payload).toEqual(minted.claims);
      expect(await issuer.verify(minted.token, [AUDIENCE])).toEqual(minted.claims);
      expect(await issuer.verify(minted.token, ['https://other.test'])).toBeUndefined();
    });

    it("is encoded byte for byte as jose's SignJWT encodes the same header and claims", async () => {
      const { keys, minted } = await setup();
      const { kid, alg, key } = keys.signer();
      const jose = await new SignJWT(minted.claims).setProtectedHeader({ alg, kid, typ: PORT_TOKEN_TYP }).sign(key);
      const [h, p, s] = parts(minted.token);
      const [jh, jp, js] = parts(jose);
      expect(h).toBe(jh);
      expect(p).toBe(jp);
      expect(Buffer.from(s, 'base64url').length).toBe(Buffer.from(js, 'base64url').length);
      // Ed25519 signatures are deterministic (RFC 8032 §5.1.6): the whole token is jose's.
      if (algorithm === 'EdDSA') expect(minted.token).toBe(jose);
    });

    it('verifies a token jose signed (tokens minted before this change keep working)', async () => {
      const { keys, issuer, minted } = await setup();
      const { kid, alg, key } = keys.signer();
      const jose = await new SignJWT({ ...minted.claims, jti: 'jose-made' }).setProtectedHeader({ alg, kid, typ: PORT_TOKEN_TYP }).sign(key);
      expect((await issuer.verify(jose, [AUDIENCE]))?.jti).toBe('jose-made');
    });

    it('a tampered signature, payload or header fails jose and Port alike', async () => {
      const { issuer, minted, jwks } = await setup();
      const [h, p, s] = parts(minted.token);
      const sig = Buffer.from(s, 'base64url');
      sig[10]! ^= 0x01;
      const forged = [
        `${h}.${p}.${sig.toString('base64url')}`,
        `${h}.${b64({ ...minted.claims, scope: 'admin' })}.${s}`,
        `${b64({ ...decodeProtectedHeader(minted.token), typ: 'JWT' })}.${p}.${s}`,
        `${h}.${p}.${s.slice(0, -4)}`,
        `${h}.${p}.${s}AAAA`,
        `${h}.${p}.`,
      ];
      for (const token of forged) {
        await expect(jwtVerify(token, jwks, { issuer: ISSUER, audience: AUDIENCE, typ: PORT_TOKEN_TYP })).rejects.toThrow();
        expect(await issuer.verify(token, [AUDIENCE])).toBeUndefined();
      }
      expect(await issuer.verify(minted.token, [AUDIENCE])).toBeDefined();
    });
  });
}

describe('Port token verification refuses forgeries', () => {
  async function setup() {
    const keys = await SigningKeys.open(fresh.store, { algorithm: 'ES256', rotation: 3600, overlap: 900 });
    const issuer = new PortTokenIssuer(keys, ISSUER);
    const minted = await issuer.mint(identity, { audience: AUDIENCE, scopes: ['deploy-token'], ttl: 900 });
    const header = { alg: 'ES256', kid: keys.signer().kid, typ: PORT_TOKEN_TYP };
    return { keys, issuer, minted, header, claims: minted.claims as unknown as Record<string, unknown> };
  }

  it('accepts its own key signing by hand, then refuses a DER-encoded ES256 signature of the same bytes', async () => {
    const { keys, issuer, header, claims } = await setup();
    expect(await issuer.verify(forge(keys.signer().keyObject, header, claims), [AUDIENCE])).toBeDefined();
    expect(await issuer.verify(forge(keys.signer().keyObject, header, claims, 'der'), [AUDIENCE])).toBeUndefined();
  });

  it('refuses a token signed by another key under the real kid, and an unknown or missing kid', async () => {
    const { issuer, header, claims } = await setup();
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    expect(await issuer.verify(forge(privateKey, header, claims), [AUDIENCE])).toBeUndefined();
    expect(await issuer.verify(forge(privateKey, { ...header, kid: 'attacker' }, claims), [AUDIENCE])).toBeUndefined();
    const { kid: _, ...noKid } = header;
    expect(await issuer.verify(forge(privateKey, noKid, claims), [AUDIENCE])).toBeUndefined();
  });

  it('refuses alg none, HS256 keyed with the public key, an alg other than the key\'s, and a crit header', async () => {
    const { keys, issuer, header, claims } = await setup();
    const payload = b64(claims);
    for (const alg of ['none', 'None']) expect(await issuer.verify(`${b64({ ...header, alg })}.${payload}.`, [AUDIENCE])).toBeUndefined();
    const jwk = keys.jwks().keys[0]!;
    const pem = createPublicKey({ key: jwk as never, format: 'jwk' }).export({ type: 'spki', format: 'pem' }) as string;
    for (const secret of [pem, JSON.stringify(jwk)]) {
      const input = `${b64({ ...header, alg: 'HS256' })}.${payload}`;
      expect(await issuer.verify(`${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`, [AUDIENCE])).toBeUndefined();
    }
    const key = keys.signer().keyObject;
    expect(await issuer.verify(forge(key, { ...header, alg: 'EdDSA' }, claims), [AUDIENCE])).toBeUndefined();
    expect(await issuer.verify(forge(key, { ...header, alg: 'ES384' }, claims), [AUDIENCE])).toBeUndefined();
    expect(await issuer.verify(forge(key, { ...header, crit: ['exp'], exp: 1 }, claims), [AUDIENCE])).toBeUndefined();
    expect(await issuer.verify(forge(key, { ...header, crit: ['b64'], b64: false }, claims), [AUDIENCE])).toBeUndefined();
  });

  it("leaves the claims to jose: wrong typ, issuer, audience, expired, and missing required claims are refused", async () => {
    const { keys, issuer, header, claims } = await setup();
    const key = keys.signer().keyObject;
    const t = Math.floor(Date.now() / 1000);
    const { jti: _jti, ...noJti } = claims;
    const refused: [string, Record<string, unknown>, Record<string, unknown>][] = [
      ['typ JWT', { ...header, typ: 'JWT' }, claims],
      ['no typ', { alg: header.alg, kid: header.kid }, claims],
      ['another issuer', header, { ...claims, iss: 'https://evil.test' }],
      ['another audience', header, { ...claims, aud: 'https://evil.test' }],
      ['expired', header, { ...claims, iat: t - 1000, nbf: t - 1000, exp: t - 10 }],
      ['not yet valid', header, { ...claims, nbf: t + 600 }],
      ['no jti', header, noJti],
    ];
    for (const [, h, c] of refused) expect(await issuer.verify(forge(key, h, c), [AUDIENCE])).toBeUndefined();
    // typ compares as jose compares it (RFC 8725 §3.11; "application/" is implied).
    expect(await issuer.verify(forge(key, { ...header, typ: 'application/AT+JWT' }, claims), [AUDIENCE])).toBeDefined();
  });
});

describe('Port token verification across processes', () => {
  it("verifies a token signed with a key another process stored since (the store is re-read for an unknown kid)", async () => {
    const t0 = Date.now() - 3_700_000;
    // Process A's key retired a minute ago but is still published (overlap).
    const a = await SigningKeys.open(fresh.store, { algorithm: 'ES256', rotation: 3600, overlap: 900 }, t0);
    const first = a.signer().kid;
    // A hears of no change: only verify's re-read of the store can find B's key.
    a.close();
    const b = await SigningKeys.open(fresh.store, { algorithm: 'ES256', rotation: 3600, overlap: 900 });
    expect(b.signer().kid).not.toBe(first);
    const minted = await new PortTokenIssuer(b, ISSUER).mint(identity, { audience: AUDIENCE, scopes: [], ttl: 900 });
    expect(a.jwks().keys.map((k) => k.kid)).toEqual([first]);
    expect((await new PortTokenIssuer(a, ISSUER).verify(minted.token, [AUDIENCE]))?.jti).toBe(minted.jti);
    expect(a.jwks().keys.map((k) => k.kid)).toContain(b.signer().kid);
    b.close();
  });
});
