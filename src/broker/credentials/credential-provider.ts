import type { CredentialConfig } from '../../config/config.js';
import type { JobIdentity } from '../../identity/job-identity.js';
import type { PortTokenClaims } from '../../issuer/port-token.js';

/**
 * What a credential provider is given: a job whose Port token holds the credential's
 * name in its scope and for whom `assume` was just allowed again.
 */
export interface CredentialGrant {
  credential: CredentialConfig;
  /** The bearer's verified (and unrevoked) Port token. */
  claims: PortTokenClaims;
  identity: JobIdentity;
  requestId: string;
  /** Milliseconds since the epoch. */
  now: number;
}

/** A credential ready to hand to the job. */
export interface IssuedCredential {
  /** The JSON body answered to the job; the only place the secret material appears. */
  body: Record<string, unknown>;
  /** When it stops working, seconds since the epoch. */
  expiresAt: number;
  /**
   * Whether Port can make it stop working before `expiresAt` (a secret's value or a
   * Port-signed JWT checked against revocation: yes; an AWS STS session: no).
   */
  recallable: boolean;
  /** What the decision log and the revocation result say about it; never the secret. */
  facts: Record<string, unknown>;
}

export interface CredentialProvider {
  issue(grant: CredentialGrant): Promise<IssuedCredential>;
}
