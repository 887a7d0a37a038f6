/** Configs with grants, and requests for every action grants compile to. */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { configFromObject, type PortConfig } from '../../src/config/config.js';
import { identityFromClaims } from '../../src/identity/claims.js';
import { approveRequestParts, type BuildFacts } from '../../src/policy/block-step-entities.js';
import { bareEntity, credentialRef, jobRequestParts, organizationRef, upstreamRef, type CreatorInfo } from '../../src/policy/entities.js';
import { claimsWithDefaults } from '../../src/policy/job-request.js';
import type { AuthzRequest } from '../../src/policy/types.js';

const made: string[] = [];

/** A fresh folder with an empty `policies/` in it; removed by cleanup(). */
export function tempDir(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'port-grants-'));
  mkdirSync(path.join(dir, 'policies'));
  made.push(dir);
  return dir;
}

export function cleanup(): void {
  for (const d of made.splice(0)) rmSync(d, { recursive: true, force: true });
}

export function writeFiles(dir: string, files: Record<string, string>): void {
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    writeFileSync(path.join(dir, name), text);
  }
}

/** What the grants below may name: credentials, upstreams, pools and autoscalers of acme. */
export const BASE = {
  server: { public_url: 'https://port.example.com' },
  buildkite: { organization: 'acme' },
  credentials: {
    'aws-prod': { type: 'secret', value: 'env:AWS_PROD' },
    'npm-publish': { type: 'secret', value: 'env:NPM_TOKEN' },
    'deploy-token': { type: 'secret', value: 'env:DEPLOY_TOKEN' },
  },
  upstreams: {
    github: { url: 'https://api.github.com' },
    artifacts: { url: 'https://artifacts.example.com' },
  },
  pools: {
    'linux/deploy': { autoscalers: ['elastic'] },
    'linux/build': { autoscalers: ['elastic', 'spot'] },
  },
  scaling: { autoscalers: { elastic: { token: 'env:ELASTIC_TOKEN' }, spot: { token: 'env:SPOT_TOKEN' } } },
} as const;

/** A validated config (secrets not read) with `grants` and anything in `over`, in `dir` (a fresh one by default). */
export function configWith(grants: unknown, over: Record<string, unknown> = {}, dir = tempDir()): PortConfig {
  return configFromObject({ ...BASE, policies: './policies', ...over, grants }, path.join(dir, 'port.yaml'), { resolveSecrets: false });
}

export interface JobFacts {
  pipeline?: string;
  branch?: string;
  tag?: string;
  pool?: string;
  /** The build's creator's groups; undefined: no creator known. */
  groups?: string[];
  active?: boolean;
  organization?: string;
}

export type JobRequestSpec = { action: 'exchange' } | { action: 'assume'; credential: string } | { action: 'proxy'; upstream: string; method: string; path: string };

/** A job request as the broker builds it (src/policy/entities.ts), from token claims. */
export function jobRequest(job: JobFacts, spec: JobRequestSpec): AuthzRequest {
  const [cluster, queue] = job.pool?.split('/') ?? [];
  const claims = claimsWithDefaults({
    organization_slug: job.organization ?? 'acme',
    pipeline_slug: job.pipeline ?? 'deploy',
    build_branch: job.branch ?? job.tag ?? 'main',
    build_tag: job.tag ?? null,
    ...(cluster !== undefined ? { cluster_name: cluster, queue_key: queue } : {}),
  });
  const identity = identityFromClaims(claims);
  const creator: CreatorInfo | undefined = job.groups === undefined ? undefined : { email: 'dev@acme.example', active: job.active ?? true, groups: job.groups };
  const { principal, entities } = jobRequestParts(identity, creator ? { creator } : undefined);
  switch (spec.action) {
    case 'exchange':
      return { principal, action: 'exchange', resource: organizationRef(identity.organizationSlug), context: { audience: 'port', scopes: [] }, entities };
    case 'assume':
      return { principal, action: 'assume', resource: credentialRef(spec.credential), context: {}, entities: [...entities, bareEntity(credentialRef(spec.credential))] };
    case 'proxy':
      return {
        principal,
        action: 'proxy',
        resource: upstreamRef(spec.upstream),
        context: { method: spec.method, path: spec.path },
        entities: [...entities, bareEntity(upstreamRef(spec.upstream))],
      };
  }
}

/** `approve` of a block step of `pipeline` by a person in `groups`. */
export function approveRequest(pipeline: string, groups: string[], opts: { isAuthor?: boolean; active?: boolean } = {}): AuthzRequest {
  const build: BuildFacts = {
    organization: 'acme',
    pipeline,
    number: 7,
    branch: 'main',
    tag: null,
    commit: 'abc',
    source: 'ui',
    creator: { email: 'author@acme.example', active: true, groups: [] },
  };
  const parts = approveRequestParts(build, { step: 'release', fields: {} }, { email: 'approver@acme.example', active: opts.active ?? true, groups });
  return { principal: parts.principal, action: 'approve', resource: parts.resource, context: { is_author: opts.isAuthor ?? false }, entities: parts.entities };
}

/** `scale` of `pool` asked by `autoscaler`. */
export function scaleRequest(autoscaler: string, pool: string): AuthzRequest {
  return {
    principal: { type: 'Autoscaler', id: autoscaler },
    action: 'scale',
    resource: { type: 'Pool', id: pool },
    context: { desired: 5, current: 2 },
    entities: [bareEntity({ type: 'Autoscaler', id: autoscaler }), bareEntity({ type: 'Pool', id: pool })],
  };
}
