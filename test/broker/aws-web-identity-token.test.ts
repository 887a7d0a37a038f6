/**
 * The web identity token Port presents to AssumeRoleWithWebIdentity is signed with
 * node:crypto (src/issuer/sign-jwt.ts): IAM — here jose's `jwtVerify` with Port's published
 * JWKS — accepts it, its header is `{alg, kid, typ: JWT}`, its claims are the job's, the
 * session tags claim and the registered ones, and header and claims are encoded byte for
 * byte as jose's SignJWT encoded them before. EdDSA, which STS refuses, is refused.
 */
import { createLocalJWKSet, decodeJwt, jwtVerify, SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import { sqliteStorePerTest } from '../helpers/temp-sqlite-store.js';
import { AWS_TAGS_CLAIM, mintWebIdentityToken, WEB_IDENTITY_TOKEN_TTL } from '../../src/broker/credentials/aws-web-identity-token.js';
import { CredentialError } from '../../src/broker/credentials/errors.js';
import type { JobIdentityClaims } from '../../src/issuer/port-token.js';
import { SigningKeys } from '../../src/issuer/signing-keys.js';

const ISSUER = 'https://port.test';
const AUDIENCE = 'sts.amazonaws.com';
const job: JobIdentityClaims = {
  organization_slug: 'acme', pipeline_slug: 'deploy', build_number: 7, build_branch: 'main', build_tag: null, build_commit: 'a'.repeat(40),
  step_key: 'ship', job_id: 'job-1', agent_id: 'agent-1', build_source: 'ui', runner_environment: 'self-hosted', cluster_name: 'default', queue_key: 'deploy',
};
const SUBJECT = `organization:acme:pipeline:deploy:ref:refs/heads/main:commit:${'a'.repeat(40)}:step:ship`;
const tags = [{ Key: 'pipeline', Value: 'deploy' }, { Key: 'build', Value: '7' }];
const transitiveTagKeys = ['pipeline'];
const tagsClaim = { principal_tags: { pipeline: ['deploy'], build: ['7'] }, transitive_tag_keys: ['pipeline'] };
const parts = (token: string) => token.split('.') as [string, string, string];

const fresh = sqliteStorePerTest('aws-web-identity-');

async function mint(algorithm: 'ES256' | 'EdDSA') {
  const keys = await SigningKeys.open(fresh.store, { algorithm, rotation: 3600, overlap: 900 });
  const now = Date.now();
  const minted = await mintWebIdentityToken(keys, { issuer: ISSUER, audience: AUDIENCE, job, tags, transitiveTagKeys, now });
  return { keys, iat: Math.floor(now / 1000), ...minted };
}

describe('web identity tokens for AssumeRoleWithWebIdentity', () => {
  it("verify with jose's jwtVerify against the published JWKS: header {alg, kid, typ: JWT}, the job's, the tags and the registered claims", async () => {
    const { keys, iat, token, jti } = await mint('ES256');
    const { payload, protectedHeader } = await jwtVerify(token, createLocalJWKSet(keys.jwks()), { issuer: ISSUER, audience: AUDIENCE, typ: 'JWT', algorithms: ['ES256'] });
    expect(protectedHeader).toEqual({ alg: 'ES256', kid: keys.signer().kid, typ: 'JWT' });
    expect(keys.jwks().keys.map((k) => k.kid)).toContain(protectedHeader.kid);
    expect(payload).toEqual({ ...job, [AWS_TAGS_CLAIM]: tagsClaim, iss: ISSUER, sub: SUBJECT, aud: AUDIENCE, iat, nbf: iat, exp: iat + WEB_IDENTITY_TOKEN_TTL, jti });
  });

  it("is encoded byte for byte as jose's SignJWT encoded it", async () => {
    const { keys, token } = await mint('ES256');
    const claims = decodeJwt(token);
    const { kid, alg, key } = keys.signer();
    const jose = await new SignJWT({ ...job, [AWS_TAGS_CLAIM]: tagsClaim })
      .setProtectedHeader({ alg, kid, typ: 'JWT' })
      .setIssuer(ISSUER)
      .setSubject(SUBJECT)
      .setAudience(AUDIENCE)
      .setIssuedAt(claims.iat!)
      .setNotBefore(claims.nbf!)
      .setExpirationTime(claims.exp!)
      .setJti(claims.jti!)
      .sign(key);
    const [h, p, s] = parts(token);
    const [jh, jp, js] = parts(jose);
    expect(h).toBe(jh);
    expect(p).toBe(jp);
    // ECDSA is randomized: the signatures differ, but both are R ‖ S of the same size (RFC 7518 §3.4).
    expect(Buffer.from(s, 'base64url').length).toBe(Buffer.from(js, 'base64url').length);
  });

  it('refuses to sign with EdDSA, which STS does not accept', async () => {
    const err = await mint('EdDSA').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CredentialError);
    expect(err).toMatchObject({ code: 'credential_unavailable', message: expect.stringMatching(/AWS STS does not accept EdDSA-signed web identity tokens/) });
  });
});
