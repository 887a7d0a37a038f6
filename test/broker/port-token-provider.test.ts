/**
 * `port_token` credentials are signed with node:crypto (src/issuer/sign-jwt.ts). For each
 * algorithm `issuer.algorithm` allows: a downstream verifying with jose's `jwtVerify` and
 * Port's published JWKS accepts the token, its header is `{alg, kid, typ: at+jwt}`, its
 * claims are the job's plus the registered ones, and header and claims are encoded byte
 * for byte as jose's SignJWT encoded them before.
 */
import { createLocalJWKSet, decodeJwt, jwtVerify, SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import { JOB_IDENTITY } from '../helpers/job-identity.js';
import { sqliteStorePerTest } from '../helpers/temp-sqlite-store.js';
import { PortTokenProvider } from '../../src/broker/credentials/port-token-provider.js';
import type { PortTokenCredentialConfig } from '../../src/config/config.js';
import { identityClaims, PORT_TOKEN_TYP, type PortTokenClaims } from '../../src/issuer/port-token.js';
import { SigningKeys } from '../../src/issuer/signing-keys.js';

const ISSUER = 'https://port.test';
const AUDIENCE = 'https://deploy.test';
const identity = JOB_IDENTITY;
const credential: PortTokenCredentialConfig = { name: 'deploy-token', type: 'port_token', audience: AUDIENCE, ttl: 120 };
const parts = (token: string) => token.split('.') as [string, string, string];

const fresh = sqliteStorePerTest('port-token-provider-');

for (const algorithm of ['ES256', 'EdDSA'] as const) {
  describe(`port_token credentials signed with ${algorithm}`, () => {
    async function issue(bearerExp = Number.MAX_SAFE_INTEGER) {
      const keys = await SigningKeys.open(fresh.store, { algorithm, rotation: 3600, overlap: 900 });
      const now = Date.now();
      const iat = Math.floor(now / 1000);
      // Only `exp` of the bearer's Port token matters to the provider.
      const claims = { ...identityClaims(identity), iss: ISSUER, sub: identity.jobId, aud: 'https://port.test', iat, exp: bearerExp, jti: 'bearer', scope: credential.name } satisfies PortTokenClaims;
      const issued = await new PortTokenProvider(keys, ISSUER).issue({ credential, claims, identity, requestId: 'req-1', now });
      return { keys, iat, issued, token: issued.body.access_token as string };
    }

    it("verifies with jose's jwtVerify against the published JWKS: header {alg, kid, typ: at+jwt}, the job's and the registered claims", async () => {
      const { keys, iat, issued, token } = await issue();
      const jwks = createLocalJWKSet(keys.jwks());
      const { payload, protectedHeader } = await jwtVerify(token, jwks, { issuer: ISSUER, audience: AUDIENCE, typ: PORT_TOKEN_TYP, algorithms: [algorithm] });
      expect(protectedHeader).toEqual({ alg: algorithm, kid: keys.signer().kid, typ: PORT_TOKEN_TYP });
      expect(keys.jwks().keys.map((k) => k.kid)).toContain(protectedHeader.kid);
      expect(payload).toEqual({ ...identityClaims(identity), iss: ISSUER, sub: identity.jobId, aud: AUDIENCE, iat, nbf: iat, exp: iat + 120, jti: expect.any(String) });
      expect(issued).toMatchObject({ expiresAt: iat + 120, recallable: false, facts: { audience: AUDIENCE, kid: keys.signer().kid } });
      expect(issued.body).toEqual({ name: credential.name, access_token: token, token_type: 'Bearer', audience: AUDIENCE, expires_at: new Date((iat + 120) * 1000).toISOString() });
      // Not a token for Port's own audience.
      await expect(jwtVerify(token, jwks, { audience: 'https://port.test' })).rejects.toThrow();
    });

    it("never outlives the bearer's Port token", async () => {
      const bearerExp = Math.floor(Date.now() / 1000) + 30;
      const { issued, token } = await issue(bearerExp);
      expect(decodeJwt(token).exp).toBe(bearerExp);
      expect(issued.expiresAt).toBe(bearerExp);
    });

    it("is encoded byte for byte as jose's SignJWT encoded it", async () => {
      const { keys, token } = await issue();
      const claims = decodeJwt(token);
      const { kid, alg, key } = keys.signer();
      const jose = await new SignJWT({ ...identityClaims(identity), iss: ISSUER, sub: identity.jobId, aud: AUDIENCE, iat: claims.iat, nbf: claims.nbf, exp: claims.exp, jti: claims.jti })
        .setProtectedHeader({ alg, kid, typ: PORT_TOKEN_TYP })
        .sign(key);
      const [h, p, s] = parts(token);
      const [jh, jp, js] = parts(jose);
      expect(h).toBe(jh);
      expect(p).toBe(jp);
      expect(Buffer.from(s, 'base64url').length).toBe(Buffer.from(js, 'base64url').length);
      // Ed25519 signatures are deterministic (RFC 8032 §5.1.6): the whole token is jose's.
      if (algorithm === 'EdDSA') expect(token).toBe(jose);
    });
  });
}
