import { createLocalJWKSet, decodeJwt, errors as joseErrors, jwtVerify, type JWTPayload } from 'jose';
import { AwsSimError } from './aws-sim-error.js';
import type { SimTag } from './sts-params.js';

/** An IAM OIDC identity provider: its issuer URL and the client ids (audiences) it accepts. */
export interface SimOidcProvider {
  url: string;
  clientIds: string[];
}

/**
 * The JWS algorithms STS accepts for web identity tokens: "Tokens must be signed using
 * either RSA keys (RS256, RS384, or RS512) or ECDSA keys (ES256, ES384, or ES512)"
 * (STS API reference, AssumeRoleWithWebIdentity, WebIdentityToken).
 */
export const STS_WEB_IDENTITY_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'ES256', 'ES384', 'ES512'];

/** The claim STS reads session tags from ("Passing session tags using AssumeRoleWithWebIdentity"). */
export const AWS_TAGS_CLAIM = 'https://aws.amazon.com/tags';

export interface VerifiedWebIdentity {
  provider: SimOidcProvider;
  /** `host/path` of the issuer, the form IAM trust conditions use (`<provider>:sub`). */
  providerKey: string;
  claims: JWTPayload;
  tags: SimTag[];
  transitive: string[];
}

/**
 * Verifies a web identity token as IAM does: find the OIDC provider for `iss`, fetch its
 * discovery document and JWKS over HTTP, verify signature, `aud` among the client ids
 * and `exp`; then read the session tags claim.
 */
export async function verifyWebIdentityToken(
  token: string,
  providers: SimOidcProvider[],
  fetchUrl: (url: string) => Promise<Response>,
  now = Date.now(),
): Promise<VerifiedWebIdentity> {
  let iss: string | undefined;
  try {
    iss = decodeJwt(token).iss;
  } catch {
    throw new AwsSimError('InvalidIdentityToken', 'The ID Token provided is not a valid JWT.', 400);
  }
  const provider = providers.find((p) => p.url.replace(/\/+$/, '') === iss);
  if (iss === undefined || !provider) throw new AwsSimError('InvalidIdentityToken', `No OpenIDConnect provider found in your account for ${iss ?? '(no iss)'}`, 400);
  let jwks: { keys: unknown[] };
  try {
    const discovery = (await (await fetchUrl(`${iss}/.well-known/openid-configuration`)).json()) as { issuer?: string; jwks_uri?: string };
    if (discovery.issuer !== iss || typeof discovery.jwks_uri !== 'string') throw new Error('discovery mismatch');
    jwks = (await (await fetchUrl(discovery.jwks_uri)).json()) as { keys: unknown[] };
  } catch {
    throw new AwsSimError('IDPCommunicationError', `Couldn't retrieve verification key from your identity provider, please reference AssumeRoleWithWebIdentity documentation for requirements`, 400);
  }
  let claims: JWTPayload;
  try {
    ({ payload: claims } = await jwtVerify(token, createLocalJWKSet(jwks as never), {
      issuer: iss,
      algorithms: STS_WEB_IDENTITY_ALGORITHMS,
      currentDate: new Date(now),
      clockTolerance: 0,
    }));
  } catch (err) {
    if (err instanceof joseErrors.JWTExpired) {
      throw new AwsSimError('ExpiredTokenException', `Token expired: current date/time ${Math.floor(now / 1000)} must be before the expiration date/time ${String(err.payload.exp)}`, 400);
    }
    throw new AwsSimError('InvalidIdentityToken', `Couldn't verify the token (${(err as Error).message}).`, 400);
  }
  const aud = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
  if (!aud.some((a) => a !== undefined && provider.clientIds.includes(a))) throw new AwsSimError('InvalidIdentityToken', 'Incorrect token audience', 400);
  const { tags, transitive } = tagsFromClaim(claims[AWS_TAGS_CLAIM]);
  return { provider, providerKey: iss.replace(/^https?:\/\//, ''), claims, tags, transitive };
}

function tagsFromClaim(raw: unknown): { tags: SimTag[]; transitive: string[] } {
  if (raw === undefined) return { tags: [], transitive: [] };
  const bad = () => new AwsSimError('InvalidIdentityToken', `The ${AWS_TAGS_CLAIM} claim is malformed.`, 400);
  if (typeof raw !== 'object' || raw === null) throw bad();
  const { principal_tags: principal = {}, transitive_tag_keys: transitive = [] } = raw as { principal_tags?: unknown; transitive_tag_keys?: unknown };
  if (typeof principal !== 'object' || principal === null || !Array.isArray(transitive) || !transitive.every((k) => typeof k === 'string')) throw bad();
  const tags: SimTag[] = [];
  for (const [Key, values] of Object.entries(principal)) {
    // Each tag value is a one-element array of strings in this claim.
    if (!Array.isArray(values) || values.length !== 1 || typeof values[0] !== 'string') throw bad();
    tags.push({ Key, Value: values[0] });
  }
  return { tags, transitive: transitive as string[] };
}

/** IAM `StringLike`: `*` any run of characters, `?` one character. */
export function stringLike(pattern: string, value: string): boolean {
  const re = new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`, 's');
  return re.test(value);
}
