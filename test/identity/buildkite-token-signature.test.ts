/**
 * The Buildkite token verifier checks signatures with node:crypto and leaves the claims to
 * jose (src/identity/buildkite-token-verifier.ts). These attacks are driven at the verifier
 * itself, against the simulator's published JWKS (RS256) and against a JWKS serving an EC
 * key (`buildkite.algorithms: [ES256]`):
 * - forged signatures: another key under a real kid, HS256 keyed with the public key
 *   (RFC 8725 §2.1), `alg: none`, a payload or header altered after signing, signatures of
 *   the wrong length, an ES256 signature in DER instead of R ‖ S (RFC 7518 §3.4);
 * - the order of RFC 7515 §5.2 / RFC 7519 §7.2: nothing about the claims is reported for a
 *   token whose signature does not verify;
 * - jose's claim checks, unchanged: for a corpus of signed claim sets the verifier refuses
 *   exactly what jose's own `jwtVerify` refuses, with jose's error.
 */
import { createHmac, createPublicKey, generateKeyPairSync, KeyObject, sign } from 'node:crypto';
import { errors as joseErrors, exportJWK, generateKeyPair, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PortConfig } from '../../src/config/config.js';
import { BuildkiteTokenVerifier } from '../../src/identity/buildkite-token-verifier.js';
import { TokenRejectedError } from '../../src/identity/errors.js';
import { BuildkiteSimulator } from '../../src/sim/index.js';
import { startFaultyJwks, type FaultyJwks } from './faulty-jwks.js';

const AUDIENCE = 'https://port.acme.test';
const b64 = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');
const parts = (token: string) => token.split('.') as [string, string, string];
const decode = (part: string) => JSON.parse(Buffer.from(part, 'base64url').toString('utf8')) as Record<string, unknown>;

let sim: BuildkiteSimulator;
beforeAll(async () => {
  sim = await BuildkiteSimulator.start({ organization: 'acme' });
});
afterAll(async () => {
  await sim?.close();
});

function config(over: Partial<PortConfig['buildkite']> = {}): PortConfig['buildkite'] {
  return {
    organization: 'acme',
    issuer: sim.issuer,
    jwksUrl: sim.jwksUrl,
    audience: AUDIENCE,
    algorithms: ['RS256'],
    clockSkew: 30,
    maxTokenBytes: 8192,
    jwksRefreshInterval: 600,
    jwksMinRefreshInterval: 30,
    jwksMaxAge: 3600,
    jwksFetchTimeout: 5,
    jwksRequestWait: 2,
    apiUrl: sim.apiUrl,
    ...over,
  };
}

/** 'ok', or the check that refused the token. */
async function outcome(v: BuildkiteTokenVerifier, token: string): Promise<string> {
  try {
    await v.verify(token);
    return 'ok';
  } catch (err) {
    if (err instanceof TokenRejectedError) return err.check;
    throw err;
  }
}

/** Signs `header.claims` with a node:crypto key; `encoding` only matters for ECDSA. */
function signWith(key: KeyObject, header: Record<string, unknown>, claims: Record<string, unknown>, encoding: 'ieee-p1363' | 'der' = 'ieee-p1363'): string {
  const input = `${b64(header)}.${b64(claims)}`;
  const hash = key.asymmetricKeyType === 'ed25519' ? null : header.alg === 'ES384' ? 'sha384' : 'sha256';
  return `${input}.${sign(hash, Buffer.from(input), { key, dsaEncoding: encoding }).toString('base64url')}`;
}

const simKey = () => KeyObject.from(sim.signingKey.privateKey);
const simHeader = () => ({ kid: sim.signingKey.kid, alg: 'RS256' });

async function genuineClaims(): Promise<Record<string, unknown>> {
  return decode(parts(await sim.mintToken(sim.createJob(), { audience: AUDIENCE }))[1]);
}

describe('Buildkite token signatures (RS256, the simulator\'s JWKS)', () => {
  let v: BuildkiteTokenVerifier;
  beforeAll(() => {
    v = new BuildkiteTokenVerifier(config());
  });

  it('accepts a genuine token, and the same claims re-signed with the published key', async () => {
    const token = await sim.mintToken(sim.createJob(), { audience: AUDIENCE });
    const verified = await v.verify(token);
    expect(verified.identity.organizationSlug).toBe('acme');
    expect(verified.kid).toBe(sim.signingKey.kid);
    expect(verified.claims).toEqual(decode(parts(token)[1]));
    expect(await outcome(v, signWith(simKey(), simHeader(), await genuineClaims()))).toBe('ok');
  });

  it('refuses RS256 signed with a key Buildkite never published, under the real kid', async () => {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    expect(await outcome(v, signWith(privateKey, simHeader(), await genuineClaims()))).toBe('bad_signature');
  });

  it('refuses HS256 keyed with the public key (algorithm confusion) and alg none in any case', async () => {
    const token = await sim.mintToken(sim.createJob(), { audience: AUDIENCE });
    const [, p] = parts(token);
    const pem = createPublicKey({ key: sim.jwks().keys[0] as never, format: 'jwk' }).export({ type: 'spki', format: 'pem' }) as string;
    for (const secret of [pem, JSON.stringify(sim.jwks().keys[0])]) {
      const input = `${b64({ ...simHeader(), alg: 'HS256' })}.${p}`;
      expect(await outcome(v, `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`)).toBe('alg_not_allowed');
    }
    for (const alg of ['none', 'None', 'NONE', '']) {
      expect(await outcome(v, `${b64({ ...simHeader(), alg })}.${p}.`)).toBe('alg_not_allowed');
    }
  });

  it('refuses a crit header even when the token is correctly signed (RFC 7515 §4.1.11)', async () => {
    const claims = await genuineClaims();
    for (const crit of [['exp'], ['b64'], []]) {
      expect(await outcome(v, signWith(simKey(), { ...simHeader(), crit }, claims))).toBe('header_not_allowed');
    }
  });

  it('refuses a payload or a header altered after signing', async () => {
    const token = await sim.mintToken(sim.createJob(), { audience: AUDIENCE });
    const [h, p, s] = parts(token);
    const claims = decode(p);
    expect(await outcome(v, `${h}.${b64({ ...claims, pipeline_slug: 'prod' })}.${s}`)).toBe('bad_signature');
    // The same claims, serialized differently: not the signed bytes.
    expect(await outcome(v, `${h}.${b64(JSON.stringify(claims, null, 1))}.${s}`)).toBe('bad_signature');
    expect(await outcome(v, `${b64({ ...simHeader(), typ: 'JWT' })}.${p}.${s}`)).toBe('bad_signature');
  });

  it('refuses a signature of the wrong length, an empty one, and a non-canonical spelling', async () => {
    const token = await sim.mintToken(sim.createJob(), { audience: AUDIENCE });
    const [h, p, s] = parts(token);
    const sig = Buffer.from(s, 'base64url');
    expect(sig.length).toBe(256);
    for (const wrong of [sig.subarray(1), sig.subarray(0, 128), Buffer.concat([sig, Buffer.from([0])]), Buffer.concat([Buffer.from([0]), sig])]) {
      expect(await outcome(v, `${h}.${p}.${wrong.toString('base64url')}`)).toBe('bad_signature');
    }
    expect(await outcome(v, `${h}.${p}.`)).toBe('bad_signature');
    expect(await outcome(v, `${h}.${p}.${s}A`)).toBe('bad_signature');
    // The genuine token is untouched by all of the above (nothing was consumed: the verifier has no replay cache).
    expect(await outcome(v, token)).toBe('ok');
  });

  it('checks the signature before the claims: a forged expired token is a bad signature, not "expired"', async () => {
    const t = Math.floor(Date.now() / 1000);
    const expired = { ...(await genuineClaims()), iat: t - 7000, nbf: t - 7000, exp: t - 3600 };
    expect(await outcome(v, signWith(simKey(), simHeader(), expired))).toBe('expired');
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    expect(await outcome(v, signWith(privateKey, simHeader(), expired))).toBe('bad_signature');
    expect(await outcome(v, signWith(privateKey, simHeader(), { ...expired, iss: 'https://evil.example' }))).toBe('bad_signature');
  });

  it('refuses a header that is not well-formed UTF-8, as jose does', async () => {
    const claims = await genuineClaims();
    const header = Buffer.concat([Buffer.from(`{"kid":"${sim.signingKey.kid}","alg":"RS256","x":"`), Buffer.from([0xc3, 0x28]), Buffer.from('"}')]);
    const input = `${header.toString('base64url')}.${b64(claims)}`;
    const token = `${input}.${sign('sha256', Buffer.from(input), simKey()).toString('base64url')}`;
    expect(await outcome(v, token)).toBe('malformed');
  });

  it("refuses exactly what jose's jwtVerify refuses among signed claim sets, with jose's error", async () => {
    const base = await genuineClaims();
    const t = Math.floor(Date.now() / 1000);
    const skew = 30;
    const variants: Record<string, Record<string, unknown>> = {
      genuine: {},
      'exp in the past': { exp: t - skew - 5 },
      'exp at the skew boundary': { exp: t - skew },
      'exp inside the skew': { exp: t - skew + 5 },
      'exp a string': { exp: String(t + 600) },
      'exp missing': { exp: undefined },
      'nbf in the future': { nbf: t + skew + 5 },
      'nbf inside the skew': { nbf: t + skew - 5 },
      'nbf a string': { nbf: String(t) },
      'nbf missing': { nbf: undefined },
      'iat a string': { iat: String(t) },
      'iat missing': { iat: undefined },
      'iss another': { iss: 'https://agent.buildkite.evil' },
      'iss an array': { iss: [sim.issuer] },
      'iss missing': { iss: undefined },
      'aud another': { aud: 'https://port.evil.test' },
      'aud an array with ours': { aud: ['https://other.test', AUDIENCE] },
      'aud an array without ours': { aud: ['https://other.test'] },
      'aud a number': { aud: 7 },
      'aud missing': { aud: undefined },
    };
    const accepted: string[] = [];
    const options = { issuer: sim.issuer, audience: AUDIENCE, algorithms: ['RS256'], clockTolerance: skew, requiredClaims: ['iss', 'aud', 'exp', 'iat', 'nbf'] };
    for (const [name, patch] of Object.entries(variants)) {
      const claims: Record<string, unknown> = { ...base, iat: t, nbf: t, exp: t + 600, ...patch };
      for (const [k, value] of Object.entries(patch)) if (value === undefined) delete claims[k];
      const token = signWith(simKey(), simHeader(), claims);
      const now = Date.now();
      let joseError: unknown;
      try {
        // The verifier's own key resolver, as jose's jwtVerify used it before.
        await jwtVerify(token, v.jwks.getKey, { ...options, currentDate: new Date(now) });
      } catch (err) {
        joseError = err;
      }
      let refusal: TokenRejectedError | undefined;
      try {
        await v.verify(token, now);
      } catch (err) {
        if (!(err instanceof TokenRejectedError)) throw err;
        refusal = err;
      }
      if (joseError === undefined) {
        // jose accepts; only Port's own checks after jose's may refuse (none do for these).
        expect(refusal?.check, name).toBeUndefined();
        accepted.push(name);
      } else {
        expect(joseError, name).toBeInstanceOf(joseErrors.JOSEError);
        expect(refusal, name).toBeDefined();
        expect(refusal!.cause, name).toBeInstanceOf((joseError as object).constructor);
        expect((refusal!.cause as Error).message, name).toBe((joseError as Error).message);
      }
    }
    expect(accepted).toEqual(['genuine', 'exp inside the skew', 'nbf inside the skew', 'aud an array with ours']);
  });
});

describe('Buildkite token signatures (ES256 key, buildkite.algorithms: [ES256, RS256])', () => {
  let jwks: FaultyJwks;
  let v: BuildkiteTokenVerifier;
  let ecKey: KeyObject;
  const kid = 'ec-key-1';
  beforeAll(async () => {
    const pair = await generateKeyPair('ES256', { extractable: true });
    ecKey = KeyObject.from(pair.privateKey);
    const publicJwk = { ...(await exportJWK(pair.publicKey)), kid, alg: 'ES256', use: 'sig' };
    jwks = await startFaultyJwks(() => ({ keys: [publicJwk, ...sim.jwks().keys] }));
    v = new BuildkiteTokenVerifier(config({ jwksUrl: jwks.url, algorithms: ['ES256', 'RS256'] }));
  });
  afterAll(async () => {
    await jwks?.close();
  });

  it('accepts an R ‖ S signature and refuses the same signature DER-encoded', async () => {
    const claims = await genuineClaims();
    expect(await outcome(v, signWith(ecKey, { kid, alg: 'ES256' }, claims, 'ieee-p1363'))).toBe('ok');
    expect(await outcome(v, signWith(ecKey, { kid, alg: 'ES256' }, claims, 'der'))).toBe('bad_signature');
  });

  it('refuses ES256 by another key, a tampered payload, a short signature, and alg/key mismatches both ways', async () => {
    const claims = await genuineClaims();
    const other = KeyObject.from((await generateKeyPair('ES256')).privateKey);
    expect(await outcome(v, signWith(other, { kid, alg: 'ES256' }, claims))).toBe('bad_signature');
    const [h, , s] = parts(signWith(ecKey, { kid, alg: 'ES256' }, claims));
    expect(await outcome(v, `${h}.${b64({ ...claims, build_branch: 'release' })}.${s}`)).toBe('bad_signature');
    const sig = Buffer.from(s, 'base64url');
    expect(await outcome(v, `${h}.${b64(claims)}.${sig.subarray(0, 63).toString('base64url')}`)).toBe('bad_signature');
    // An RS256 header naming the EC key, and an ES256 header naming the RSA key: the key's algorithm wins.
    expect(await outcome(v, signWith(simKey(), { kid, alg: 'RS256' }, claims))).toBe('alg_not_allowed');
    expect(await outcome(v, signWith(ecKey, { kid: sim.signingKey.kid, alg: 'ES256' }, claims))).toBe('alg_not_allowed');
    // ES384 is not allowed at all.
    expect(await outcome(v, signWith(ecKey, { kid, alg: 'ES384' }, claims))).toBe('alg_not_allowed');
  });
});
