import type { DecisionRecord } from '../store/records/decisions.js';

/**
 * What one decision record says it is about, read tolerantly: records written by older
 * Ports (or by other parts of Port) may lack any of these fields, and a field of the
 * wrong type is treated as absent rather than trusted.
 */
export interface EntryRefs {
  /** Cedar type and id of the principal (`Job`, `Build`, `User`…). */
  principal?: { type: string; id: string };
  /** Job ids the record concerns: principal Job, `context.job.job_id`, `context.job_id`. */
  jobs: string[];
  /** The build, from the principal, a BlockStep resource, `context.job` or `context.build`. */
  build?: BuildRef;
  /** The build creator's lower-cased e-mail, when the record names it. */
  creator?: string;
  /** An approval request id (`context.request_id` of a record about a BlockStep). */
  requestId?: string;
  /** SHA-256 of the bearer Port token's jti (`context.port_token.jti_sha256`). */
  tokenHash?: string;
  /** SHA-256 of a Buildkite token's jti (`context.subject_token.jti_sha256`): exchanged, or presented to the relay. */
  subjectTokenHash?: string;
  /** `context.job.agent_id`. */
  agent?: string;
  /** `cluster_name/queue_key`, the Cedar Pool id. */
  pool?: string;
  /** The credential named by a `Port::Credential` resource. */
  credential?: string;
  /** An allowed `assume` that handed the credential out (`context.credential` present), not the grant decided at exchange. */
  issued?: true;
  /** A revocation's scope and id (`context.scope`, and `context.id` or, for a token, `context.jti_sha256`). */
  revoke?: { scope: string; id: string };
}

/** `org/pipeline/number`; the organization is missing from some older records. */
export interface BuildRef {
  organization?: string;
  pipeline: string;
  number: number;
}

const ENTITY = /^Port::([A-Za-z]+)::("(?:[^"\\]|\\.)*")$/;

/** `Port::Job::"0190…"` → `{type: 'Job', id: '0190…'}`; undefined for anything else. */
export function parseEntity(s: string | null | undefined): { type: string; id: string } | undefined {
  if (typeof s !== 'string') return undefined;
  const m = ENTITY.exec(s);
  if (!m) return undefined;
  try {
    const id: unknown = JSON.parse(m[2]!);
    return typeof id === 'string' ? { type: m[1]!, id } : undefined;
  } catch {
    return undefined;
  }
}

/** `org/pipeline/number` → BuildRef; undefined unless it has exactly that shape. */
export function parseBuildId(id: string): BuildRef | undefined {
  const parts = id.split('/');
  if (parts.length !== 3) return undefined;
  const [organization, pipeline, number] = parts as [string, string, string];
  if (organization === '' || pipeline === '' || !/^\d+$/.test(number)) return undefined;
  return { organization, pipeline, number: Number(number) };
}

/** The key builds are compared by. Port serves one organization, so `pipeline/number` names a build. */
export function buildKey(b: BuildRef): string {
  return `${b.pipeline}/${b.number}`;
}

export function buildLabel(b: BuildRef): string {
  return `${b.organization ?? '?'}/${b.pipeline}/${b.number}`;
}

export function objectAt(v: unknown): Record<string, unknown> | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}

export function stringAt(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}

function numberAt(v: unknown): number | undefined {
  if (typeof v === 'number' && Number.isSafeInteger(v)) return v;
  if (typeof v === 'string' && /^\d{1,15}$/.test(v)) return Number(v);
  return undefined;
}

function email(v: unknown): string | undefined {
  const s = stringAt(v) ?? stringAt(objectAt(v)?.email);
  return s?.toLowerCase();
}

/** Reads what `record` is about. Never throws. */
export function entryRefs(record: DecisionRecord): EntryRefs {
  const ctx = objectAt(record.context) ?? {};
  const job = objectAt(ctx.job);
  const refs: EntryRefs = { jobs: [] };
  const addJob = (id: unknown): void => {
    const s = stringAt(id);
    if (s !== undefined && !refs.jobs.includes(s)) refs.jobs.push(s);
  };

  const principal = parseEntity(record.principal);
  if (principal) refs.principal = principal;
  if (principal?.type === 'Job') addJob(principal.id);
  if (principal?.type === 'Build') refs.build = parseBuildId(principal.id);

  const resource = parseEntity(record.resource);
  if (resource?.type === 'BlockStep' && refs.build === undefined) {
    // `org/pipeline/number/step`: the build is the first three parts.
    refs.build = parseBuildId(resource.id.split('/').slice(0, 3).join('/'));
  }
  if (resource?.type === 'Credential') refs.credential = resource.id;

  if (job) {
    addJob(job.job_id);
    const pipeline = stringAt(job.pipeline_slug);
    const number = numberAt(job.build_number);
    if (refs.build === undefined && pipeline !== undefined && number !== undefined) {
      const organization = stringAt(job.organization_slug);
      refs.build = { ...(organization !== undefined ? { organization } : {}), pipeline, number };
    }
    refs.agent = stringAt(job.agent_id);
    const cluster = stringAt(job.cluster_name);
    const queue = stringAt(job.queue_key);
    if (cluster !== undefined && queue !== undefined) refs.pool = `${cluster}/${queue}`;
    refs.creator = email(job.build_creator);
  }
  addJob(ctx.job_id);

  const build = objectAt(ctx.build);
  if (build) {
    const pipeline = stringAt(build.pipeline);
    const number = numberAt(build.number);
    if (refs.build === undefined && pipeline !== undefined && number !== undefined) {
      const organization = stringAt(build.organization);
      refs.build = { ...(organization !== undefined ? { organization } : {}), pipeline, number };
    }
    refs.creator ??= email(build.creator);
  }

  if (record.action === 'assume' && record.decision === 'allow' && objectAt(ctx.credential) !== undefined) refs.issued = true;
  // Approval records name their request; elsewhere `request_id` is the HTTP request's id,
  // which restarts with Port and so links nothing.
  if (resource?.type === 'BlockStep') refs.requestId = stringAt(ctx.request_id);
  refs.tokenHash = stringAt(objectAt(ctx.port_token)?.jti_sha256);
  refs.subjectTokenHash = stringAt(objectAt(ctx.subject_token)?.jti_sha256);
  const scope = stringAt(ctx.scope);
  // A token revocation names the token by its jti hash, never the token.
  const id = stringAt(ctx.id) ?? (scope === 'token' ? stringAt(ctx.jti_sha256) : undefined);
  if (record.action === 'revoke' && scope !== undefined && id !== undefined) refs.revoke = { scope, id };
  if (refs.revoke?.scope === 'job') addJob(refs.revoke.id);
  if (refs.revoke?.scope === 'build') refs.build ??= parseBuildId(refs.revoke.id);

  for (const key of Object.keys(refs) as (keyof EntryRefs)[]) if (refs[key] === undefined) delete refs[key];
  return refs;
}
