import { randomUUID } from 'node:crypto';
import type { JobIdentityClaims } from '../../issuer/port-token.js';
import { signJwt } from '../../issuer/sign-jwt.js';
import type { SigningKeys } from '../../issuer/signing-keys.js';
import { mergeObjects } from '../../merge-objects.js';
import { SAFE_VALUE_DESCRIPTION, unsafeCharacter } from './aws-claim-value.js';
import type { SessionTag } from './aws-session-tags.js';
import { CredentialError } from './errors.js';

/** STS reads session tags of AssumeRoleWithWebIdentity from this claim ("Passing session tags using AssumeRoleWithWebIdentity"). */
export const AWS_TAGS_CLAIM = 'https://aws.amazon.com/tags';
/**
 * "Tokens must be signed using either RSA keys (RS256, RS384, or RS512) or ECDSA keys
 * (ES256, ES384, or ES512)" (STS API reference, AssumeRoleWithWebIdentity): not EdDSA.
 */
export const STS_ACCEPTED_ALGORITHMS: readonly string[] = ['RS256', 'RS384', 'RS512', 'ES256', 'ES384', 'ES512'];
/** Lifetime of the token: it is used once, right away. */
export const WEB_IDENTITY_TOKEN_TTL = 300;

/**
 * Buildkite's compound subject (https://buildkite.com/docs/agent/v3/cli-oidc):
 * `organization:ORG:pipeline:PIPELINE:ref:REF:commit:SHA:step:STEP`, REF `refs/tags/TAG` or
 * `refs/heads/BRANCH`, an empty step when the step has no key — so trust policies written
 * for Buildkite's own tokens (`…:sub` StringLike) work unchanged against Port's.
 */
export function compoundSubject(job: JobIdentityClaims): string {
  const ref = job.build_tag ? `refs/tags/${job.build_tag}` : `refs/heads/${job.build_branch}`;
  return `organization:${job.organization_slug}:pipeline:${job.pipeline_slug}:ref:${ref}:commit:${job.build_commit}:step:${job.step_key ?? ''}`;
}

/**
 * Refuses a job whose compound `sub` would be ambiguous: a component holding `:` (a branch
 * `main:commit:evil` gives `…:ref:refs/heads/main:commit:evil:commit:<sha>:step:`, which
 * matches a trust policy's `…:ref:refs/heads/main:*`), `*`, `?` or anything else outside
 * the safe set (aws-claim-value.ts). The step key may be empty (a step without a key);
 * the other components may not. Names the claim, never its value.
 */
export function checkSubjectComponents(job: JobIdentityClaims, credential: string): void {
  const ref: [string, unknown] = job.build_tag ? ['build_tag', job.build_tag] : ['build_branch', job.build_branch];
  const components: [string, unknown, boolean][] = [
    ['organization_slug', job.organization_slug, false],
    ['pipeline_slug', job.pipeline_slug, false],
    [...ref, false],
    ['build_commit', job.build_commit, false],
    ['step_key', job.step_key ?? '', true],
  ];
  for (const [claim, value, mayBeEmpty] of components) {
    if (typeof value !== 'string' || (value === '' && !mayBeEmpty)) {
      throw new CredentialError('invalid_request', `Credential ${credential}: the web identity token's sub needs the job claim ${claim}, which this job's token does not carry.`);
    }
    const bad = value === '' ? undefined : unsafeCharacter(value);
    if (bad !== undefined) {
      throw new CredentialError(
        'invalid_request',
        `Credential ${credential}: this job's ${claim} holds ${bad}, which would make the web identity token's sub ambiguous to trust policies; it may hold only ${SAFE_VALUE_DESCRIPTION}.`,
      );
    }
  }
}

/**
 * The JWT Port presents to AssumeRoleWithWebIdentity, signed as an OIDC issuer with Port's
 * current key (published at /.well-known/jwks.json): `typ: JWT` so it can never pass as a
 * Port token (`at+jwt`), `aud` the IAM OIDC provider's client id, the job's claims, and the
 * session tags in the AWS tags claim (that call has no Tags parameter).
 */
export async function mintWebIdentityToken(
  keys: SigningKeys,
  opts: { issuer: string; audience: string; job: JobIdentityClaims; tags: SessionTag[]; transitiveTagKeys: string[]; now: number },
): Promise<{ token: string; jti: string }> {
  const { kid, alg, keyObject } = keys.signer();
  if (!STS_ACCEPTED_ALGORITHMS.includes(alg)) {
    throw new CredentialError('credential_unavailable', `AWS STS does not accept ${alg}-signed web identity tokens; set issuer.algorithm: ES256.`);
  }
  const iat = Math.floor(opts.now / 1000);
  const jti = randomUUID();
  // The registered claims follow the job's, in the order jose's SignJWT setters added them,
  // so the token is encoded as before; signed synchronously with node:crypto (src/issuer/sign-jwt.ts).
  const claims: Record<string, unknown> = mergeObjects(opts.job, {
    [AWS_TAGS_CLAIM]: {
      principal_tags: Object.fromEntries(opts.tags.map((t) => [t.Key, [t.Value]])),
      transitive_tag_keys: opts.transitiveTagKeys,
    },
    iss: opts.issuer,
    sub: compoundSubject(opts.job),
    aud: opts.audience,
    iat,
    nbf: iat,
    exp: iat + WEB_IDENTITY_TOKEN_TTL,
    jti,
  });
  const token = signJwt({ alg, kid, typ: 'JWT' }, claims, keyObject);
  return { token, jti };
}
