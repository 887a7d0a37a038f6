import type { DecisionRecord } from '../store/records/decisions.js';
import { buildLabel, entryRefs, objectAt, parseEntity, stringAt } from './lineage-refs.js';

/** Where an entry sits in a job's chain. */
export type LineageStage = 'exchange' | 'grant' | 'credential' | 'relay' | 'approval' | 'revocation' | 'rotation' | 'provisioning' | 'other';

const APPROVAL_ACTIONS = new Set([
  'unblock',
  'approve',
  'reject',
  'approval_requested',
  'approval_expired',
  'approval_notified',
  'approval_notify_failed',
  'unblocked',
  'unblock_failed',
  'unblock_observed',
  'build_canceled',
  'build_cancel_failed',
]);

/** Facts longer than this are cut: a record is explained, not reproduced. */
const MAX_VALUE = 200;
/** Hex digits of a jti hash shown: enough to match entries by eye, and the same prefix everywhere. */
const HASH_PREFIX = 16;

type Facts = [string, string][];

export function stageOf(record: DecisionRecord): LineageStage {
  const a = record.action;
  if (a === 'exchange') return 'exchange';
  // At exchange, `assume` is decided per requested scope with the Buildkite token's identity
  // context (`subject_token`); at `POST /v1/credentials` it is decided again on the Port token.
  if (a === 'assume') {
    const ctx = objectAt(record.context);
    return objectAt(ctx?.subject_token) !== undefined && objectAt(ctx?.credential) === undefined ? 'grant' : 'credential';
  }
  if (a === 'proxy') return 'relay';
  if (a === 'revoke') return 'revocation';
  if (a === 'rotate') return 'rotation';
  if (a.startsWith('scim_')) return 'provisioning';
  if (APPROVAL_ACTIONS.has(a)) return 'approval';
  return 'other';
}

/** When the step happened, its stage and its key facts. Never throws on odd records. */
export function describeStep(record: DecisionRecord): { at: string; stage: LineageStage; facts: Facts } {
  const ctx = objectAt(record.context) ?? {};
  const stage = stageOf(record);
  // An aggregated relay entry is written when its window closes; its requests began at window_start.
  const windowStart = stringAt(ctx.window_start);
  const at = stage === 'relay' && windowStart !== undefined && !Number.isNaN(Date.parse(windowStart)) ? windowStart : record.time;
  const facts: Facts = [];
  const add = (label: string, v: unknown): void => {
    const s = text(v);
    if (s !== undefined) facts.push([label, s]);
  };
  const token = (label: string, v: unknown): void => add(label, hashText(objectAt(v)?.jti_sha256));

  switch (stage) {
    case 'exchange': {
      add('refused_at', ctx.check);
      token('port_token', ctx.port_token);
      add('expires', epochText(objectAt(ctx.port_token)?.exp));
      add('audience', objectAt(ctx.port_token)?.aud);
      token('buildkite_token', ctx.subject_token);
      break;
    }
    case 'grant':
      token('port_token', ctx.port_token);
      break;
    case 'credential': {
      const c = objectAt(ctx.credential) ?? {};
      add('type', c.type);
      add('session_name', c.session_name ?? c.role_session_name);
      add('role', c.role_arn);
      add('audience', c.audience);
      add('version', c.version);
      add('expires', epochText(c.expires_at ?? c.expiration));
      add('recallable', c.recallable);
      rest(c, ['type', 'session_name', 'role_session_name', 'role_arn', 'audience', 'version', 'expires_at', 'expiration', 'recallable'], '', facts);
      add('refused_at', ctx.check);
      add('failure', ctx.failure);
      token('port_token', ctx.port_token);
      break;
    }
    case 'relay':
      add('upstream', ctx.upstream);
      add('method', ctx.method);
      add('path', ctx.path);
      add('requests', ctx.requests);
      if (windowStart !== undefined) add('until', record.time);
      add('token_kind', ctx.token_kind);
      token('port_token', ctx.port_token);
      token('buildkite_token', ctx.subject_token);
      break;
    case 'approval': {
      add('request', ctx.request_id);
      const step = objectAt(ctx.step);
      add('step', step?.key ?? ctx.step_key);
      add('label', step?.label);
      const principal = parseEntity(record.principal);
      if ((record.action === 'approve' || record.action === 'reject') && principal?.type === 'User') add('approver', principal.id);
      add('verdict', ctx.verdict);
      add('is_author', ctx.is_author);
      const req = objectAt(ctx.requirement);
      add('needs', req ? `${text(req.approvals) ?? '?'} from ${text(req.groups) ?? 'any group'}` : undefined);
      add('expires', ctx.expires_at);
      add('by', ctx.by);
      add('approvers', ctx.approvers);
      add('unblocker', ctx.unblocker);
      const by = objectAt(ctx.unblocked_by);
      add('unblocked_by', by ? (by.email ?? by.name ?? by.id) : undefined);
      add('sink', ctx.sink);
      add('event', ctx.event);
      add('on_expiry', ctx.on_expiry);
      break;
    }
    case 'revocation': {
      const principal = parseEntity(record.principal);
      add('scope', ctx.scope ?? (ctx.job_id !== undefined ? 'job' : ctx.port_token !== undefined ? 'token' : undefined));
      add('id', ctx.id ?? ctx.job_id);
      // Scoped revocations name their actor as the principal; the job.finished and RFC 7009
      // records name the revoked job there instead, so only an explicit actor is shown for those.
      // (RevocationService's actor is an entity or a word: `admin`, `scim`, `webhook`.)
      const byPrincipal = ctx.scope !== undefined ? (principal ? `${principal.type} ${principal.id}` : record.principal) : undefined;
      add('token', hashText(ctx.jti_sha256));
      add('actor', ctx.actor ?? byPrincipal);
      token('port_token', ctx.port_token);
      rest(ctx, ['scope', 'id', 'jti_sha256', 'job_id', 'actor', 'port_token', 'build', 'job', 'subject_token', 'request_id', 'remote_address', 'reason'], '', facts);
      break;
    }
    default:
      rest(ctx, ['job', 'subject_token', 'port_token', 'request_id', 'remote_address'], '', facts);
      token('port_token', ctx.port_token);
  }
  return { at, stage, facts };
}

/** How a group is headed: the job's identity from the first record that carries it, else the block step. */
export function groupTitle(records: DecisionRecord[]): Facts {
  const facts: Facts = [];
  const add = (label: string, v: unknown): void => {
    const s = text(v);
    if (s !== undefined && !facts.some(([l]) => l === label)) facts.push([label, s]);
  };
  const withJob = records.find((r) => objectAt(objectAt(r.context)?.job) !== undefined);
  if (withJob) {
    const job = objectAt(objectAt(withJob.context)?.job)!;
    const refs = entryRefs(withJob);
    if (refs.build) add('build', buildLabel(refs.build));
    add('branch', job.build_branch);
    add('tag', job.build_tag);
    add('commit', stringAt(job.build_commit)?.slice(0, 12));
    add('step', job.step_key);
    add('source', job.build_source);
    add('agent', job.agent_id);
    add('pool', refs.pool);
    add('creator', job.build_creator);
  }
  for (const r of records) {
    const resource = parseEntity(r.resource);
    if (resource?.type === 'BlockStep') {
      add('block_step', resource.id);
      const step = objectAt(objectAt(r.context)?.step);
      add('label', step?.label);
      const build = objectAt(objectAt(r.context)?.build);
      add('creator', typeof build?.creator === 'string' ? build.creator : objectAt(build?.creator)?.email);
    }
  }
  return facts;
}

/** Scalars (and lists of scalars) of `obj` not in `skip`, one level of nesting as `a.b`. */
function rest(obj: Record<string, unknown>, skip: string[], prefix: string, facts: Facts): void {
  for (const [k, v] of Object.entries(obj)) {
    if (skip.includes(k)) continue;
    const nested = objectAt(v);
    if (nested && prefix === '') {
      rest(nested, [], `${k}.`, facts);
      continue;
    }
    const s = text(v);
    if (s !== undefined) facts.push([`${prefix}${k}`, s]);
  }
}

/** A fact as text: scalars, lists of scalars, or objects of scalars (`k:v,…`); undefined for nothing to say. */
function text(v: unknown): string | undefined {
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v === 'string') return clip(v);
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (Array.isArray(v)) {
    const items = v.map((x) => text(x)).filter((x): x is string => x !== undefined);
    return items.length > 0 ? clip(items.join(',')) : undefined;
  }
  const o = objectAt(v);
  if (o) {
    const items = Object.entries(o)
      .map(([k, x]) => (typeof x === 'object' && x !== null ? undefined : text(x) !== undefined ? `${k}:${text(x)}` : undefined))
      .filter((x): x is string => x !== undefined);
    return items.length > 0 ? clip(`{${items.join(',')}}`) : undefined;
  }
  return undefined;
}

/** A jti hash as the same short prefix everywhere it appears, so an exchange and its later uses line up. */
function hashText(v: unknown): string | undefined {
  return typeof v === 'string' && /^[0-9a-f]{16,}$/i.test(v) ? `sha256:${v.slice(0, HASH_PREFIX)}` : undefined;
}

/** Seconds or milliseconds since the epoch, or an ISO string, as ISO 8601. */
function epochText(v: unknown): string | undefined {
  if (typeof v === 'number' && Number.isFinite(v) && v > 0) {
    // Port's records use seconds (JWT `exp`); 1e11 seconds is the year 5138, so a larger number is milliseconds.
    const ms = v < 1e11 ? v * 1000 : v;
    const d = new Date(ms);
    return Number.isNaN(d.getTime()) ? undefined : d.toISOString();
  }
  return text(v);
}

function clip(s: string): string {
  return s.length > MAX_VALUE ? `${s.slice(0, MAX_VALUE - 1)}…` : s;
}
