import { randomUUID } from 'node:crypto';
import { errors as joseErrors, jwtVerify, type JWTPayload } from 'jose';
import type { AgentFactsClaim } from '../identity/agent-facts.js';
import type { JobIdentity } from '../identity/job-identity.js';
import { signJwt } from './sign-jwt.js';
import type { SigningKeys } from './signing-keys.js';

/**
 * Port tokens are JWT access tokens (RFC 9068 shape, `typ: at+jwt`) so a downstream
 * service can verify them with Port's JWKS, and so a Port token can never be
 * mistaken for an ID token or a Buildkite token (RFC 8725 §3.11 explicit typing).
 */
export const PORT_TOKEN_TYP = 'at+jwt';

/** The job's identity as carried in a Port token, under Buildkite's claim names. */
export interface JobIdentityClaims {
  organization_slug: string;
  pipeline_slug: string;
  build_number: number;
  build_branch: string;
  build_tag: string | null;
  build_commit: string;
  step_key: string | null;
  job_id: string;
  agent_id: string;
  build_source: string;
  runner_environment: string;
  organization_id?: string;
  pipeline_id?: string;
  build_id?: string;
  cluster_id?: string;
  cluster_name?: string;
  queue_id?: string;
  queue_key?: string;
}

export interface PortTokenClaims extends JobIdentityClaims, JWTPayload {
  iss: string;
  sub: string;
  aud: string;
  exp: number;
  iat: number;
  jti: string;
  scope: string;
  /**
   * The build creator's lower-cased e-mail, when Port learned it from the Buildkite API
   * at exchange (the Buildkite token doesn't carry it). Revocation by `user` matches it.
   */
  build_creator?: string;
  /**
   * Set when Port asked the Buildkite API who started the build and got no answer: while
   * a user revocation made since is in force, the token is refused (src/revocation).
   */
  build_creator_unknown?: boolean;
  /** What Port verified about the job's agent at exchange (src/identity/agent-facts.ts); absent when no pool rule applied. */
  agent_attestation?: AgentFactsClaim;
  /**
   * RFC 9449 §6.1: the token is bound to this DPoP key (its RFC 7638 thumbprint); every use
   * must come with a DPoP proof made with it.
   */
  cnf?: { jkt: string };
}

export interface MintedToken {
  token: string;
  jti: string;
  expiresAt: number;
  claims: PortTokenClaims;
}

/** The job's identity claims carried in a Port token (Buildkite's claim names). */
export function identityClaims(id: JobIdentity): JobIdentityClaims {
  const claims: JobIdentityClaims = {
    organization_slug: id.organizationSlug,
    pipeline_slug: id.pipelineSlug,
    build_number: id.buildNumber,
    build_branch: id.branch,
    build_tag: id.tag,
    build_commit: id.commit,
    step_key: id.stepKey,
    job_id: id.jobId,
    agent_id: id.agentId,
    build_source: id.buildSource,
    runner_environment: id.runnerEnvironment,
  };
  // The optional ones only when the token had them, in this order (every exchange builds this more than once).
  if (id.organizationId !== undefined) claims.organization_id = id.organizationId;
  if (id.pipelineId !== undefined) claims.pipeline_id = id.pipelineId;
  if (id.buildId !== undefined) claims.build_id = id.buildId;
  if (id.clusterId !== undefined) claims.cluster_id = id.clusterId;
  if (id.clusterName !== undefined) claims.cluster_name = id.clusterName;
  if (id.queueId !== undefined) claims.queue_id = id.queueId;
  if (id.queueKey !== undefined) claims.queue_key = id.queueKey;
  return claims;
}

export class PortTokenIssuer {
  constructor(
    private readonly keys: SigningKeys,
    private readonly issuer: string,
  ) {}

  /** Signs a token for the job, valid for `ttl` seconds from `now` (ms). */
  async mint(
    identity: JobIdentity,
    opts: { audience: string; scopes: string[]; ttl: number; now?: number; creator?: string; creatorUnknown?: boolean; agent?: AgentFactsClaim; jkt?: string },
  ): Promise<MintedToken> {
    const iat = Math.floor((opts.now ?? Date.now()) / 1000);
    const jti = randomUUID();
    // Members added in place, not spread: this runs on every exchange.
    const claims = identityClaims(identity) as PortTokenClaims;
    claims.iss = this.issuer;
    claims.sub = identity.jobId;
    claims.aud = opts.audience;
    claims.iat = iat;
    claims.nbf = iat;
    claims.exp = iat + opts.ttl;
    claims.jti = jti;
    claims.scope = opts.scopes.join(' ');
    if (opts.creator !== undefined) claims.build_creator = opts.creator.toLowerCase();
    else if (opts.creatorUnknown) claims.build_creator_unknown = true;
    if (opts.agent !== undefined) claims.agent_attestation = opts.agent;
    if (opts.jkt !== undefined) claims.cnf = { jkt: opts.jkt };
    // Signed synchronously with node:crypto, encoded as jose's SignJWT would (src/issuer/sign-jwt.ts).
    const { kid, alg, keyObject } = this.keys.signer();
    const token = signJwt({ alg, kid, typ: PORT_TOKEN_TYP }, claims, keyObject);
    return { token, jti, expiresAt: claims.exp, claims };
  }

  /**
   * Verifies a Port token's signature, type, issuer and lifetime (not revocation:
   * see src/revocation). Returns undefined for any token that is not a valid Port token.
   *
   * Left to jose's `jwtVerify` (WebCrypto), unlike `mint`: measured on `/v1/credentials`,
   * verifying synchronously made each request return to the group commit sooner, in
   * smaller batches, and cost more than the thread-pool hop it saved (BENCHMARKS.md,
   * "Signatures off the WebCrypto thread pool"); the relay caches verified tokens.
   */
  async verify(token: string, audiences: string[]): Promise<PortTokenClaims | undefined> {
    if (token.length > 16384) return undefined;
    try {
      const { payload } = await jwtVerify(token, this.keys.verificationKeys, {
        issuer: this.issuer,
        audience: audiences,
        algorithms: ['ES256', 'EdDSA'],
        typ: PORT_TOKEN_TYP,
        requiredClaims: ['exp', 'iat', 'jti', 'sub'],
      });
      return payload as PortTokenClaims;
    } catch (err) {
      if (err instanceof joseErrors.JOSEError) return undefined;
      throw err;
    }
  }
}
