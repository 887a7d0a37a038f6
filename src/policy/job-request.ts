/**
 * Hand-written job requests, for `port policy test` and `port policy explain`: partial
 * Buildkite claims with defaults filled in, and the action's context with defaults, so a
 * test case states only what it is about. The broker builds its requests from verified
 * tokens and real context instead (see entities.ts).
 */
import { PortError } from '../errors.js';
import { identityFromClaims } from '../identity/claims.js';
import type { JobIdentity } from '../identity/job-identity.js';
import { bareEntity, credentialRef, jobRequestParts, organizationRef, upstreamRef, type CreatorInfo } from './entities.js';
import type { AuthzRequest, CedarValue, EntityRef } from './types.js';

/** Actions whose principal is a Job and whose resource a hand-written request can name. */
export const JOB_ACTIONS = ['exchange', 'assume', 'proxy'] as const;
export type JobAction = (typeof JOB_ACTIONS)[number];

export interface JobRequestSpec {
  action: JobAction;
  /** Required for assume. */
  credential?: string;
  /** Required for proxy. */
  upstream?: string;
  /** Merged over the action's default context. */
  context?: Record<string, CedarValue>;
  /** The build's creator (as the broker learns it from Buildkite's REST API); absent: unknown. */
  creator?: CreatorInfo;
}

/** A request that can't be built: the message says which field and how to fix it. */
export class RequestSpecError extends PortError {
  constructor(message: string) {
    super('policy_request_invalid', message, 400);
  }
}

/**
 * Claims used where a case leaves one out: a push build of `acme/app` on main, on a
 * self-hosted agent, without tag or step key. `sub` is derived (https://buildkite.com/docs/agent/v3/cli-oidc).
 */
export const DEFAULT_CLAIMS: Readonly<Record<string, unknown>> = {
  organization_slug: 'acme',
  pipeline_slug: 'app',
  build_number: 1,
  build_branch: 'main',
  build_tag: null,
  build_commit: '0000000000000000000000000000000000000000',
  step_key: null,
  job_id: '01900000-0000-7000-8000-000000000001',
  agent_id: '01900000-0000-7000-8000-000000000002',
  build_source: 'webhook',
  runner_environment: 'self-hosted',
  iat: 1_700_000_000,
  exp: 1_700_000_300,
};

/** Default context per action, matching the schema's context types. */
export const DEFAULT_CONTEXT: Readonly<Record<JobAction, Readonly<Record<string, CedarValue>>>> = {
  exchange: { audience: 'port', scopes: [] },
  assume: {},
  proxy: { method: 'GET', path: '/' },
};

/** Defaults, then each layer in order; `sub` is computed unless a layer sets it. */
export function claimsWithDefaults(...layers: Readonly<Record<string, unknown>>[]): Record<string, unknown> {
  const claims: Record<string, unknown> = Object.assign({}, DEFAULT_CLAIMS, ...layers);
  if (claims.sub === undefined) claims.sub = compoundSubject(claims);
  return claims;
}

/** `organization:ORG:pipeline:PIPE:ref:REF:commit:SHA:step:KEY` (https://buildkite.com/docs/agent/v3/cli-oidc). */
function compoundSubject(c: Record<string, unknown>): string {
  const tag = typeof c.build_tag === 'string' && c.build_tag !== '' ? c.build_tag : undefined;
  const ref = tag !== undefined ? `refs/tags/${tag}` : `refs/heads/${String(c.build_branch)}`;
  const step = typeof c.step_key === 'string' ? c.step_key : '';
  return `organization:${String(c.organization_slug)}:pipeline:${String(c.pipeline_slug)}:ref:${ref}:commit:${String(c.build_commit)}:step:${step}`;
}

/** Builds the request; throws InvalidClaimError (bad claims) or RequestSpecError (bad resource). */
export function buildJobRequest(claims: Readonly<Record<string, unknown>>, spec: JobRequestSpec): { identity: JobIdentity; request: AuthzRequest } {
  const identity = identityFromClaims(claims);
  const { principal, entities } = jobRequestParts(identity, spec.creator !== undefined ? { creator: spec.creator } : undefined);
  const resource = resourceFor(identity, spec);
  if (resource.type !== 'Organization') entities.push(bareEntity(resource));
  return {
    identity,
    request: {
      principal,
      action: spec.action,
      resource,
      context: { ...DEFAULT_CONTEXT[spec.action], ...spec.context },
      entities,
    },
  };
}

function resourceFor(identity: JobIdentity, spec: JobRequestSpec): EntityRef {
  switch (spec.action) {
    case 'exchange':
      if (spec.credential !== undefined || spec.upstream !== undefined) {
        throw new RequestSpecError('exchange takes no credential or upstream: its resource is the organization of the claims');
      }
      return organizationRef(identity.organizationSlug);
    case 'assume':
      if (spec.credential === undefined || spec.upstream !== undefined) {
        throw new RequestSpecError('assume needs a credential (and no upstream)');
      }
      return credentialRef(spec.credential);
    case 'proxy':
      if (spec.upstream === undefined || spec.credential !== undefined) {
        throw new RequestSpecError('proxy needs an upstream (and no credential)');
      }
      return upstreamRef(spec.upstream);
  }
}
