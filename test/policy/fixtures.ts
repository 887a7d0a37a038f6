/** Temp policy folders and requests for the policy tests. */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { JobIdentity } from '../../src/identity/job-identity.js';
import { credentialRef, jobRequestParts, organizationRef } from '../../src/policy/entities.js';
import type { AuthzRequest, CedarEntity } from '../../src/policy/types.js';

const made: string[] = [];

export async function policyDir(files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'port-policy-'));
  made.push(dir);
  await writeFiles(dir, files);
  return dir;
}

export async function writeFiles(dir: string, files: Record<string, string>): Promise<void> {
  for (const [name, text] of Object.entries(files)) await writeFile(path.join(dir, name), text);
}

export async function cleanup(): Promise<void> {
  await Promise.all(made.splice(0).map((d) => rm(d, { recursive: true, force: true })));
}

export function identity(over: Partial<JobIdentity> = {}): JobIdentity {
  return {
    subject: 'organization:acme:pipeline:deploy:ref:refs/heads/main:commit:abc:step:',
    organizationSlug: 'acme',
    pipelineSlug: 'deploy',
    buildNumber: 42,
    branch: 'main',
    tag: null,
    commit: 'abc123',
    stepKey: null,
    jobId: 'job-1',
    agentId: 'agent-1',
    buildSource: 'webhook',
    runnerEnvironment: 'self-hosted',
    agentTags: {},
    issuedAt: 1_700_000_000,
    expiresAt: 1_700_000_300,
    ...over,
  };
}

export function exchangeRequest(over: Partial<JobIdentity> = {}, extra: CedarEntity[] = []): AuthzRequest {
  const id = identity(over);
  const { principal, entities } = jobRequestParts(id);
  return {
    principal,
    action: 'exchange',
    resource: organizationRef(id.organizationSlug),
    context: { audience: 'port', scopes: [] },
    entities: [...entities, ...extra],
  };
}

export function assumeRequest(credential: string, over: Partial<JobIdentity> = {}): AuthzRequest {
  const id = identity(over);
  const { principal, entities } = jobRequestParts(id);
  return { principal, action: 'assume', resource: credentialRef(credential), context: {}, entities };
}

export const PERMIT_EXCHANGE = `@id("acme-exchange")
@reason("acme jobs may exchange")
permit (principal is Port::Job, action == Port::Action::"exchange", resource == Port::Organization::"acme");
`;

export const FORBID_BRANCHES = `@id("no-branches")
@reason("only main gets tokens")
forbid (principal is Port::Job, action == Port::Action::"exchange", resource)
when { principal.branch != "main" };
`;
