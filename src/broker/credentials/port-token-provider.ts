import { randomUUID } from 'node:crypto';
import { jtiHash } from '../../audit/token-hash.js';
import type { PortTokenCredentialConfig } from '../../config/config.js';
import { identityClaims, PORT_TOKEN_TYP } from '../../issuer/port-token.js';
import { signJwt } from '../../issuer/sign-jwt.js';
import type { SigningKeys } from '../../issuer/signing-keys.js';
import { mergeObjects } from '../../merge-objects.js';
import type { CredentialGrant, CredentialProvider, IssuedCredential } from './credential-provider.js';

/**
 * `port_token`: a Port-signed JWT access token (RFC 9068 shape, `typ: at+jwt`) for one
 * downstream audience, verifiable with Port's JWKS. Its `aud` is never one of Port's
 * own (the config refuses that), so it can't be used as a Port token at Port.
 */
export class PortTokenProvider implements CredentialProvider {
  constructor(
    private readonly keys: SigningKeys,
    private readonly issuerUrl: string,
  ) {}

  async issue(grant: CredentialGrant): Promise<IssuedCredential> {
    const cred = grant.credential as PortTokenCredentialConfig;
    const iat = Math.floor(grant.now / 1000);
    // Never outlives the bearer's Port token (and so never the job).
    const exp = Math.min(iat + cred.ttl, grant.claims.exp);
    const jti = randomUUID();
    // Signed synchronously with node:crypto, encoded as jose's SignJWT would (src/issuer/sign-jwt.ts).
    const { kid, alg, keyObject } = this.keys.signer();
    const token = signJwt(
      { alg, kid, typ: PORT_TOKEN_TYP },
      mergeObjects(identityClaims(grant.identity), {
        iss: this.issuerUrl,
        sub: grant.identity.jobId,
        aud: cred.audience,
        iat,
        nbf: iat,
        exp,
        jti,
      }),
      keyObject,
    );
    return {
      body: { name: cred.name, access_token: token, token_type: 'Bearer', audience: cred.audience, expires_at: new Date(exp * 1000).toISOString() },
      expiresAt: exp,
      // Downstreams verify it offline with Port's JWKS: it works there until `exp`, revoked or not.
      recallable: false,
      facts: { audience: cred.audience, kid, jti_sha256: jtiHash(jti) },
    };
  }
}
