import { randomUUID } from 'node:crypto';
import { entityString } from '../audit/decision-from-policy.js';
import type { DecisionLog } from '../audit/decision-log.js';
import { jtiHash } from '../audit/token-hash.js';
import type { AttestationMethod, PoolConfig, PortConfig } from '../config/config.js';
import { resolveSecretRef } from '../config/secret-ref.js';
import { DpopError } from '../dpop/errors.js';
import { DpopVerifier, type VerifiedProof } from '../dpop/proof-verifier.js';
import { PortError } from '../errors.js';
import type { BuildkiteTokenVerifier, VerifiedJobToken } from '../identity/buildkite-token-verifier.js';
import { TokenRejectedError } from '../identity/errors.js';
import { buildkiteTokenFacts } from '../revocation/buildkite-token-facts.js';
import { refusalContext, refusalMessage } from '../revocation/refusal.js';
import type { RevocationList } from '../revocation/revocation-list.js';
import type { DecisionRecord } from '../store/records/decisions.js';
import type { AgentAttestationRecord, AgentAttestationStore } from '../store/repositories/agent-attestations.js';
import type { ReplayStore } from '../store/repositories/replay.js';
import type { AttestRequest } from './attest-request.js';
import { checkPoolRules, type VerifiedAws } from './attestation-rules.js';
import { AwsIamVerifier, type AwsIamIdentity } from './attestation/aws-iam.js';
import { AwsIidVerifier, type InstanceIdentity } from './attestation/aws-iid.js';
import { AttestationError } from './attestation/errors.js';
import { poolFor } from './pool-match.js';
import { mergeObjects } from '../merge-objects.js';

/** Where agents attest; a DPoP proof's `htu` is Port's public URL and this path (RFC 9449 §4.3 check 9). */
export const ATTEST_PATH = '/v1/agents/attest';

/** The AWS methods `POST /v1/agents/attest` verifies (`buildkite` is checked live at exchange, not here). */
export const AWS_METHODS = ['aws_iam', 'aws_iid'] as const;
export type AwsMethod = (typeof AWS_METHODS)[number];

/**
 * The `jkt` an instance is bound to when its identity document was first presented after
 * `attestation.aws_iid.max_age` of its launch: not a thumbprint (`:` is not base64url), so
 * no key ever matches it, and the instance can never attest with its document — which a
 * copy made later can no longer be told apart from.
 */
export const UNBINDABLE_INSTANCE = 'unbindable:first-use-after-max-age';

/** Identifies the request in the decision log (never the body). */
export interface AttestMeta {
  requestId: string;
  remoteAddress?: string;
}

/** The 200 answer of `POST /v1/agents/attest`. */
export interface AttestResult {
  agent_id: string;
  /** `cluster_name/queue_key` of the attesting job's token. */
  pool: string;
  /** What was verified and recorded (sorted). */
  attestation: AwsMethod[];
  /** RFC 3339. */
  expires_at: string;
  host_bound: boolean;
  /** RFC 7638 thumbprint of the host key the attestation registered (the request's DPoP proof key). */
  jkt?: string;
  /** Methods in the request Port was not configured to verify (aws_iid without `attestation.aws_iid`): not recorded. */
  ignored?: AwsMethod[];
}

export interface AttestationServiceDeps {
  config: Pick<PortConfig, 'pools' | 'attestation' | 'server' | 'buildkite'>;
  verifier: Pick<BuildkiteTokenVerifier, 'verify'>;
  revocations: Pick<RevocationList, 'refusalOf'>;
  log: DecisionLog;
  attestations: AgentAttestationStore;
  /** Single use of signed GetCallerIdentity requests. */
  replay: ReplayStore;
  dpop: Pick<DpopVerifier, 'verify'>;
  awsIam: Pick<AwsIamVerifier, 'verify'>;
  /** Absent when Port has no `attestation.aws_iid` (no pool can require it then). */
  awsIid?: Pick<AwsIidVerifier, 'verify'>;
  now?: () => number;
}

/** A refusal after the Buildkite token verified: the decision log's `check` and the error answered. */
class Refusal extends Error {
  constructor(
    readonly check: string,
    readonly error: PortError,
    /** More decision-log context (e.g. which revocation refused). */
    readonly context: Record<string, unknown> = {},
  ) {
    super(error.message);
  }
}

/** What one request proved so far (for the decision-log context, allow or deny). */
interface Progress {
  presented: AwsMethod[];
  ignored: AwsMethod[];
  pool?: PoolConfig;
  proof?: VerifiedProof;
  iam?: AwsIamIdentity;
  iid?: InstanceIdentity;
}

/**
 * Agent attestation: an agent host proves, with a Buildkite token of a job it runs, which
 * AWS instance and role it is (`aws_iam`, `aws_iid`), and registers its host key (DPoP
 * proof). Port records it for the agent id until `pools.*.attestation_ttl`; the agent gate
 * reads it at exchange. The rules, in order:
 * 1. the Buildkite token verifies, is not revoked, and is used once (an attestation is a
 *    use of it, allowed or refused, like an exchange);
 * 2. its `cluster_name/queue_key` is a `pools:` entry that requires `aws_iam` or `aws_iid`;
 * 3. every method the pool requires is in the request; methods it doesn't require are
 *    verified all the same and recorded when they verify, and refuse the attestation when
 *    they don't (a host presenting a false document is not trusted for its true one) —
 *    except `aws_iid` when Port has no `attestation.aws_iid` certificates, which is ignored
 *    and answered as `ignored`;
 * 4. a DPoP proof (RFC 9449) for `POST {public_url}/v1/agents/attest` comes with host-bound
 *    pools and with `aws_iid` (it registers the host key); one sent otherwise is verified too;
 * 5. the proofs verify, the pool's accounts/regions/roles hold, and two proofs describe one
 *    machine (same account; the role session named after the instance);
 * 6. `aws_iid`: the instance binds the host key on its first attestation within
 *    `attestation.aws_iid.max_age` of its launch (`pendingTime`); later attestations must
 *    present that key, so a copied document (which anyone on the instance can read from
 *    IMDS, and which never expires) is useless elsewhere.
 * Each attempt is one decision-log entry (action `attest`, principal the Agent, resource the
 * Pool); nothing is recorded in the attestation store on a refusal.
 */
export class AttestationService {
  private readonly now: () => number;

  constructor(private readonly deps: AttestationServiceDeps) {
    this.now = deps.now ?? Date.now;
  }

  async attest(body: AttestRequest, dpopHeader: string | readonly string[] | undefined, meta: AttestMeta): Promise<AttestResult> {
    const { verifier, log } = this.deps;
    let verified: VerifiedJobToken;
    try {
      verified = await verifier.verify(body.buildkite_token, this.now());
    } catch (err) {
      // Nobody identified: the refusal log aggregates and throttles these per source.
      if (err instanceof TokenRejectedError) await log.record([this.record('deny', err.message, meta, undefined, { check: err.check })]);
      throw err;
    }
    const progress: Progress = { presented: AWS_METHODS.filter((m) => body[m] !== undefined), ignored: [] };
    try {
      await this.verifyAll(verified, body, dpopHeader, progress);
    } catch (err) {
      if (!(err instanceof Refusal)) throw err;
      await this.consumeToken(verified, [this.deny(err, meta, verified, progress)], meta, progress);
      throw err.error;
    }
    await this.consumeToken(verified, [], meta, progress);
    const now = this.now();
    if (progress.iid !== undefined) {
      const refused = await this.bindInstance(progress.iid, progress.proof!.jkt, now);
      if (refused !== undefined) {
        await log.record([this.deny(refused, meta, verified, progress)]);
        throw refused.error;
      }
    }
    const pool = progress.pool!;
    const methods = AWS_METHODS.filter((m) => (m === 'aws_iam' ? progress.iam : progress.iid) !== undefined);
    const record: AgentAttestationRecord = {
      agentId: verified.identity.agentId,
      pool: poolKeyOf(verified),
      jobId: verified.identity.jobId,
      methods,
      ...facts(progress),
      ...(progress.proof ? { jkt: progress.proof.jkt } : {}),
      attestedAt: now,
      expiresAt: now + pool.attestationTtl * 1000,
    };
    const reason = `Agent ${record.agentId} attested for pool ${record.pool} with ${methods.join(' and ')}.`;
    // Logged before it takes effect: an attestation in force always has its entry.
    await log.record([this.record('allow', reason, meta, verified, { attestation: mergeObjects(attestationContext(progress), { expires_at: new Date(record.expiresAt).toISOString() }) })]);
    await this.deps.attestations.put(record);
    return {
      agent_id: record.agentId,
      pool: record.pool,
      attestation: methods,
      expires_at: new Date(record.expiresAt).toISOString(),
      host_bound: pool.hostBound,
      ...(record.jkt !== undefined ? { jkt: record.jkt } : {}),
      ...(progress.ignored.length > 0 ? { ignored: progress.ignored } : {}),
    };
  }

  /** Rules 1–5 (all but single use and the instance binding); throws Refusal. */
  private async verifyAll(verified: VerifiedJobToken, body: AttestRequest, dpopHeader: string | readonly string[] | undefined, progress: Progress): Promise<void> {
    const { config, revocations } = this.deps;
    const refused = step('revocations_unavailable', () => revocations.refusalOf(buildkiteTokenFacts(verified, undefined, false)));
    if (refused !== undefined) {
      throw new Refusal('revoked', new TokenRejectedError('job_revoked', refusalMessage(refused)), { revocation: refusalContext(refused) });
    }
    const pool = this.poolOf(verified);
    progress.pool = pool;
    const required = pool.attestation.filter(isAwsMethod);
    for (const m of required) {
      if (body[m] === undefined) {
        throw new Refusal('method_missing', new AttestationError('invalid_attestation', `Pool ${pool.key} requires ${m} attestation and the request has none; ${HOW_TO_SEND[m]}.`));
      }
    }
    const iid = body.aws_iid !== undefined && this.deps.awsIid !== undefined ? body.aws_iid : undefined;
    if (body.aws_iid !== undefined && iid === undefined) progress.ignored.push('aws_iid');

    const proofNeeded = pool.hostBound || iid !== undefined;
    if (dpopHeader === undefined && proofNeeded) {
      const why = pool.hostBound ? `pool ${pool.key} binds Port tokens to the agent host (host_bound)` : 'aws_iid attestation registers the host key';
      throw new Refusal('dpop_required', new AttestationError('invalid_attestation', `A DPoP proof made with the host key is required: ${why}; send it in the DPoP header (port agent attest does).`));
    }
    if (dpopHeader !== undefined) {
      try {
        progress.proof = await this.deps.dpop.verify(dpopHeader, { method: 'POST', url: `${config.server.publicUrl.replace(/\/+$/, '')}${ATTEST_PATH}` }, this.now());
      } catch (err) {
        if (err instanceof DpopError) throw new Refusal(`dpop_${err.check}`, err);
        throw err;
      }
    }
    if (body.aws_iam !== undefined) {
      const req = body.aws_iam;
      progress.iam = await refuseOn('aws_iam', () => this.deps.awsIam.verify(req, this.now()));
    }
    if (iid !== undefined) {
      progress.iid = await refuseOn('aws_iid', async () => this.deps.awsIid!.verify(iid.document, iid.signature));
    }
    const aws: VerifiedAws = {};
    if (progress.iam) aws.iam = progress.iam;
    if (progress.iid) aws.iid = progress.iid;
    const broken = checkPoolRules(pool, aws);
    if (broken !== undefined) throw new Refusal(broken.check, new AttestationError('attestation_failed', broken.message));
    if (progress.iam !== undefined) {
      // The same signed request twice is a copy: the host signs a fresh one each time.
      const fresh = await this.deps.replay.consume(progress.iam.replayKey, progress.iam.signedAt + config.attestation.awsIam.maxAge * 1000);
      if (!fresh) {
        throw new Refusal('aws_iam_replayed', new AttestationError('invalid_attestation', 'This signed sts:GetCallerIdentity request was already used; sign a fresh one for each attestation.'));
      }
    }
  }

  /** The token's pool: a `pools:` entry that requires an AWS method. */
  private poolOf(verified: VerifiedJobToken): PoolConfig {
    const match = poolFor(this.deps.config, verified.identity);
    if (match.kind === 'missing_claims' || (match.kind === 'none' && (verified.identity.clusterName === undefined || verified.identity.queueKey === undefined))) {
      throw new Refusal(
        'pool_claims_missing',
        new TokenRejectedError('pool_claims_missing', "The Buildkite token lacks the cluster_name and queue_key claims that name the agent's pool; request it with --claim cluster_name,queue_key."),
      );
    }
    if (match.kind !== 'pool') {
      const key = match.kind === 'unconfigured' ? match.key : poolKeyOf(verified);
      throw new Refusal('pool_not_configured', new AttestationError('attestation_failed', `Pool ${key} has no pools: entry in Port's configuration, so its agents have nothing to attest.`));
    }
    if (!match.pool.attestation.some(isAwsMethod)) {
      const asks = match.pool.attestation.length > 0 ? match.pool.attestation.join(', ') : 'none';
      throw new Refusal('pool_not_attested', new AttestationError('attestation_failed', `Pool ${match.pool.key} requires no AWS attestation (attestation: ${asks}); there is nothing to attest.`));
    }
    return match.pool;
  }

  /**
   * Rule 6, atomically across Port processes: the first binding of the instance wins. A
   * first presentation after max_age binds the instance to no key at all.
   */
  private async bindInstance(iid: InstanceIdentity, jkt: string, now: number): Promise<Refusal | undefined> {
    const maxAge = this.deps.config.attestation.awsIid!.maxAge;
    const inWindow = now - iid.pendingTime <= maxAge * 1000;
    const binding = await this.deps.attestations.bindInstanceKey({ instanceId: iid.instanceId, jkt: inWindow ? jkt : UNBINDABLE_INSTANCE, boundAt: now });
    if (binding.jkt === jkt) return undefined;
    if (binding.jkt === UNBINDABLE_INSTANCE) {
      return new Refusal(
        'iid_first_use_too_late',
        new AttestationError(
          'attestation_failed',
          `Instance ${iid.instanceId} first presented its identity document more than ${maxAge} s after it launched (attestation.aws_iid.max_age), when a copy can't be told from the original; it can't attest with aws_iid — replace the instance, or attest with aws_iam alone where the pool allows.`,
        ),
      );
    }
    return new Refusal(
      'instance_key_mismatch',
      new AttestationError('attestation_failed', `Instance ${iid.instanceId} registered another host key when it first attested; an identity document presented with a different key is refused.`),
    );
  }

  /** Single use, with `records` in the same durable write; a replay is refused (and only the replay logged). */
  private async consumeToken(verified: VerifiedJobToken, records: DecisionRecord[], meta: AttestMeta, progress: Progress): Promise<void> {
    const replayed = new TokenRejectedError('replayed', 'The Buildkite token was already used at Port; request a fresh one from the agent.');
    const first = await this.deps.log.recordFirstUse(
      verified.replayKey,
      (verified.identity.expiresAt + this.deps.config.buildkite.clockSkew) * 1000,
      records,
      () => [this.deny(new Refusal('replayed', replayed), meta, verified, progress)],
    );
    if (!first) throw replayed;
  }

  private deny(r: Refusal, meta: AttestMeta, verified: VerifiedJobToken, progress: Progress): DecisionRecord {
    return this.record('deny', r.error.message, meta, verified, { check: r.check, ...r.context, attestation: attestationContext(progress) });
  }

  private record(decision: 'allow' | 'deny', reason: string, meta: AttestMeta, verified: VerifiedJobToken | undefined, extra: Record<string, unknown>): DecisionRecord {
    const pool = verified !== undefined && verified.identity.clusterName !== undefined && verified.identity.queueKey !== undefined ? poolKeyOf(verified) : undefined;
    return {
      id: randomUUID(),
      time: new Date(this.now()).toISOString(),
      principal: verified ? entityString({ type: 'Agent', id: verified.identity.agentId }) : null,
      action: 'attest',
      resource: pool !== undefined ? entityString({ type: 'Pool', id: pool }) : null,
      decision,
      policies: [],
      reason,
      context: mergeObjects(extra, {
        request_id: meta.requestId,
        ...(meta.remoteAddress ? { remote_address: meta.remoteAddress } : {}),
        ...(verified ? jobContext(verified) : {}),
      }),
    };
  }
}

/** Builds the service from the configuration: the AWS verifiers, certificates read now. */
export function attestationServiceFromConfig(
  config: PortConfig,
  deps: Pick<AttestationServiceDeps, 'verifier' | 'revocations' | 'log' | 'attestations' | 'replay'> & { dpop?: AttestationServiceDeps['dpop'] },
): AttestationService {
  const iid = config.attestation.awsIid;
  return new AttestationService({
    config,
    ...deps,
    dpop: deps.dpop ?? new DpopVerifier({ maxAge: config.attestation.dpopMaxAge, replay: deps.replay }),
    awsIam: new AwsIamVerifier({ stsEndpoint: config.attestation.awsIam.stsEndpoint, serverId: config.attestation.awsIam.serverId, maxAge: config.attestation.awsIam.maxAge }),
    ...(iid
      ? { awsIid: new AwsIidVerifier({ certificates: Object.fromEntries(Object.entries(iid.certificates).map(([region, s]) => [region, resolveSecretRef(s.ref, s.key, s.baseDir)])) }) }
      : {}),
  });
}

/** Whether Port serves `POST /v1/agents/attest`: some pool requires an AWS method. */
export function attestationEnabled(config: Pick<PortConfig, 'pools'>): boolean {
  return Object.values(config.pools).some((p) => p.attestation.some(isAwsMethod));
}

const HOW_TO_SEND: Record<AwsMethod, string> = {
  aws_iam: 'send a signed sts:GetCallerIdentity as aws_iam (port agent attest does, with the instance role credentials)',
  aws_iid: 'send the instance identity document and its signature as aws_iid (port agent attest does, from the instance metadata service)',
};

function isAwsMethod(m: AttestationMethod | string): m is AwsMethod {
  return (AWS_METHODS as readonly string[]).includes(m);
}

function poolKeyOf(verified: VerifiedJobToken): string {
  return `${verified.identity.clusterName}/${verified.identity.queueKey}`;
}

/** Runs a synchronous check whose failure is Port's (revocation list behind): a 503, logged as `check`. */
function step<T>(check: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof PortError) throw new Refusal(check, err);
    throw err;
  }
}

/** A verifier's PortError becomes a Refusal logged as `check`; anything else is Port's bug (500). */
async function refuseOn<T>(check: string, fn: () => Promise<T> | T): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof PortError) throw new Refusal(check, err);
    throw err;
  }
}

/** The verified facts, as the attestation record keeps them. */
function facts(p: Progress): Pick<AgentAttestationRecord, 'instanceId' | 'account' | 'region' | 'iamRole'> {
  const account = p.iam?.account ?? p.iid?.accountId;
  return {
    ...(p.iid ? { instanceId: p.iid.instanceId, region: p.iid.region } : {}),
    ...(account !== undefined ? { account } : {}),
    ...(p.iam ? { iamRole: p.iam.iamRole } : {}),
  };
}

/** `context.attestation`: what was asked, presented and verified — never the document, signature or signed request. */
function attestationContext(p: Progress): Record<string, unknown> {
  const f = facts(p);
  return {
    ...(p.pool ? { pool: p.pool.key, required: p.pool.attestation, host_bound: p.pool.hostBound } : {}),
    presented: p.presented,
    methods: AWS_METHODS.filter((m) => (m === 'aws_iam' ? p.iam : p.iid) !== undefined),
    ...(p.ignored.length > 0 ? { ignored: p.ignored } : {}),
    ...(f.instanceId !== undefined ? { instance_id: f.instanceId } : {}),
    ...(f.account !== undefined ? { account: f.account } : {}),
    ...(f.region !== undefined ? { region: f.region } : {}),
    ...(f.iamRole !== undefined ? { iam_role: f.iamRole } : {}),
    ...(p.iid ? { pending_time: new Date(p.iid.pendingTime).toISOString() } : {}),
    ...(p.proof ? { jkt: p.proof.jkt } : {}),
  };
}

/** `context.job` (the attesting job, as lineage reads it) and the Buildkite token as its jti hash. */
function jobContext(v: VerifiedJobToken): Record<string, unknown> {
  const id = v.identity;
  return {
    job: {
      job_id: id.jobId,
      agent_id: id.agentId,
      organization_slug: id.organizationSlug,
      pipeline_slug: id.pipelineSlug,
      build_number: id.buildNumber,
      ...(id.clusterName !== undefined ? { cluster_name: id.clusterName } : {}),
      ...(id.queueKey !== undefined ? { queue_key: id.queueKey } : {}),
    },
    subject_token: { kid: v.kid, ...(id.jti !== undefined ? { jti_sha256: jtiHash(id.jti) } : {}), iat: id.issuedAt, exp: id.expiresAt },
  };
}
