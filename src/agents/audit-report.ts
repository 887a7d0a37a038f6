import { objectAt, parseEntity, stringAt } from '../audit/lineage-refs.js';
import type { PoolConfig } from '../config/config.js';
import type { DecisionRecord } from '../store/records/decisions.js';
import { poolByKey } from './pool-match.js';

/**
 * `port agents audit`: from decision records and the config's `pools:`, which agents
 * received something (a Port token, a credential, relay access) and how each was attested
 * when it did. Pure: the caller reads the log (audit-read.ts) and prints (audit-report-format.ts).
 *
 * The verdict judges the past by the pools' rules in force NOW: an agent served while a
 * pool was in `enforcement: audit`, or before the pool required attestation at all, counts
 * against the pool — that is what an operator asks before turning enforcement on.
 */
export interface AgentAuditOptions {
  /** The config's `pools:` (key → entry). */
  pools: Readonly<Record<string, PoolConfig>>;
  /** The window, in ms since the epoch: decisions at or after `since`, before `until`. */
  since: number;
  until: number;
  /** Only this pool: `CLUSTER/QUEUE`, or `CLUSTER/*` for every queue of the cluster. */
  pool?: string;
}

/** How the agent was attested when it received something, as the decision recorded it. */
export type AttestationSeen =
  | {
      /** The decision carried `context.agent` (Port checked the agent). */
      recorded: true;
      /** A current attestation record existed. */
      attested: boolean;
      /** Methods verified then (`buildkite`, `aws_iam`, `aws_iid`), sorted. */
      methods: string[];
      /** Methods the pool required then and the agent lacked, sorted. */
      missing: string[];
      /** The pool's enforcement then, when recorded. */
      enforcement?: string;
    }
  /** No `context.agent`: decided before Port checked agents, so nothing about the agent was verified. */
  | { recorded: false };

export interface Received {
  /** Port tokens minted at exchange. */
  portTokens: number;
  /** Credentials granted or issued (`assume`), sorted. */
  credentials: string[];
  /** Upstreams the relay forwarded to (`proxy`), sorted. */
  upstreams: string[];
}

/** One agent in one attestation state. */
export interface AgentAuditRow {
  /** Buildkite agent id; null when the decision named none. */
  agentId: string | null;
  attestation: AttestationSeen;
  received: Received;
  /** Decisions counted (an aggregated relay entry counts once). */
  decisions: number;
  /** RFC 3339 times of the first and last of them. */
  first: string;
  last: string;
  /** Methods the pool requires now that the agent was not attested with then; empty: compliant. */
  unmet: string[];
}

export interface PoolAudit {
  /** `CLUSTER/QUEUE` the jobs' tokens claimed; null for tokens without pool claims. */
  pool: string | null;
  /** The `pools:` entry governing it now (exact, or `CLUSTER/*`), if any. */
  rule?: { key: string; attestation: string[]; enforcement: 'enforce' | 'audit'; hostBound: boolean };
  rows: AgentAuditRow[];
  /** No row has unmet requirements. */
  ok: boolean;
}

export interface AgentAuditReport {
  since: string;
  until: string;
  /** `--pool`, when given. */
  pool?: string;
  /** Sorted by pool; tokens without pool claims last. */
  pools: PoolAudit[];
  ok: boolean;
}

/** What one allowed decision handed out; undefined when it handed out nothing. */
type Delivery = { kind: 'port_token' } | { kind: 'credential'; name: string } | { kind: 'upstream'; name: string };

/**
 * What an allowed decision delivered. An `exchange` delivered a Port token only when one
 * was minted (`context.port_token`: an exchange whose other scope was denied mints
 * nothing). An `assume` delivered the credential when it was issued (`context.credential`)
 * or granted in a minted Port token (`context.port_token`). A `proxy` allow is relay access.
 */
export function deliveryOf(record: DecisionRecord): Delivery | undefined {
  if (record.decision !== 'allow') return undefined;
  const ctx = objectAt(record.context) ?? {};
  const resource = parseEntity(record.resource);
  switch (record.action) {
    case 'exchange':
      return objectAt(ctx.port_token) !== undefined ? { kind: 'port_token' } : undefined;
    case 'assume':
      if (resource?.type !== 'Credential') return undefined;
      return objectAt(ctx.credential) !== undefined || objectAt(ctx.port_token) !== undefined ? { kind: 'credential', name: resource.id } : undefined;
    case 'proxy': {
      const name = resource?.type === 'Upstream' ? resource.id : stringAt(ctx.upstream);
      return name !== undefined ? { kind: 'upstream', name } : undefined;
    }
    default:
      return undefined;
  }
}

/** The agent, pool and attestation a decision recorded; tolerant of older or malformed records (a bad field is absent). */
export function agentOf(record: DecisionRecord): { agentId: string | null; pool: string | null; attestation: AttestationSeen } {
  const ctx = objectAt(record.context) ?? {};
  const job = objectAt(ctx.job);
  const agent = objectAt(ctx.agent);
  const cluster = stringAt(job?.cluster_name);
  const queue = stringAt(job?.queue_key);
  const pool = cluster !== undefined && queue !== undefined ? `${cluster}/${queue}` : (validPool(stringAt(agent?.pool)) ?? null);
  const agentId = stringAt(agent?.id) ?? stringAt(job?.agent_id) ?? null;
  if (agent === undefined) return { agentId, pool, attestation: { recorded: false } };
  const enforcement = stringAt(agent.enforcement);
  return {
    agentId,
    pool,
    attestation: {
      recorded: true,
      attested: agent.attested === true,
      methods: strings(agent.attestation),
      missing: strings(agent.missing),
      ...(enforcement !== undefined ? { enforcement } : {}),
    },
  };
}

/** AWS methods are only as good as the attestation record behind them. */
const RECORD_BACKED = new Set(['aws_iam', 'aws_iid']);

/** Required methods the agent was not attested with at the time (fail closed on contradictions). */
export function unmetMethods(required: readonly string[], seen: AttestationSeen): string[] {
  if (!seen.recorded) return [...required];
  return required.filter((m) => !seen.methods.includes(m) || seen.missing.includes(m) || (RECORD_BACKED.has(m) && !seen.attested));
}

/** Whether a `--pool` value is well formed: `CLUSTER/QUEUE` or `CLUSTER/*`. */
export function isPoolFilter(text: string): boolean {
  return /^[^/\s*]+\/([^/\s*]+|\*)$/.test(text);
}

interface RowAcc {
  agentId: string | null;
  attestation: AttestationSeen;
  portTokens: number;
  credentials: Set<string>;
  upstreams: Set<string>;
  decisions: number;
  first: number;
  last: number;
}

/**
 * Builds the report a record at a time, so a caller paging through a long log keeps only
 * one accumulator per (pool, agent, attestation state), never the records.
 */
export class AgentAuditCollector {
  private readonly rows = new Map<string, RowAcc & { pool: string | null }>();

  constructor(private readonly opts: AgentAuditOptions) {}

  offer(record: DecisionRecord): void {
    const delivery = deliveryOf(record);
    if (delivery === undefined) return;
    const at = Date.parse(record.time);
    if (Number.isNaN(at) || at < this.opts.since || at >= this.opts.until) return;
    const { agentId, pool, attestation } = agentOf(record);
    if (this.opts.pool !== undefined && !poolMatches(this.opts.pool, pool)) return;
    // One row per attestation state; the pool's enforcement is not part of it: a Port
    // token's later uses (relay, /v1/credentials) record the facts without the pool's rules.
    const state = attestation.recorded ? { attested: attestation.attested, methods: attestation.methods, missing: attestation.missing } : null;
    const key = JSON.stringify([pool, agentId, state]);
    let row = this.rows.get(key);
    if (row === undefined) {
      row = { pool, agentId, attestation, portTokens: 0, credentials: new Set(), upstreams: new Set(), decisions: 0, first: at, last: at };
      this.rows.set(key, row);
    } else if (row.attestation.recorded && attestation.recorded && row.attestation.enforcement === undefined && attestation.enforcement !== undefined) {
      row.attestation = attestation;
    }
    row.decisions++;
    row.first = Math.min(row.first, at);
    row.last = Math.max(row.last, at);
    if (delivery.kind === 'port_token') row.portTokens++;
    else if (delivery.kind === 'credential') row.credentials.add(delivery.name);
    else row.upstreams.add(delivery.name);
  }

  report(): AgentAuditReport {
    const byPool = new Map<string | null, PoolAudit>();
    for (const acc of this.rows.values()) {
      let group = byPool.get(acc.pool);
      if (group === undefined) {
        group = { pool: acc.pool, ...ruleFor(this.opts.pools, acc.pool), rows: [], ok: true };
        byPool.set(acc.pool, group);
      }
      const unmet = group.rule === undefined ? [] : unmetMethods(group.rule.attestation, acc.attestation);
      group.rows.push({
        agentId: acc.agentId,
        attestation: acc.attestation,
        received: { portTokens: acc.portTokens, credentials: [...acc.credentials].sort(), upstreams: [...acc.upstreams].sort() },
        decisions: acc.decisions,
        first: new Date(acc.first).toISOString(),
        last: new Date(acc.last).toISOString(),
        unmet,
      });
      if (unmet.length > 0) group.ok = false;
    }
    const pools = [...byPool.values()].sort((a, b) => (a.pool === null ? 1 : b.pool === null ? -1 : a.pool.localeCompare(b.pool)));
    for (const p of pools) p.rows.sort(compareRows);
    return {
      since: new Date(this.opts.since).toISOString(),
      until: new Date(this.opts.until).toISOString(),
      ...(this.opts.pool !== undefined ? { pool: this.opts.pool } : {}),
      pools,
      ok: pools.every((p) => p.ok),
    };
  }
}

/** The report over `records` (any order). */
export function buildAgentAudit(records: Iterable<DecisionRecord>, opts: AgentAuditOptions): AgentAuditReport {
  const collector = new AgentAuditCollector(opts);
  for (const r of records) collector.offer(r);
  return collector.report();
}

function ruleFor(pools: Readonly<Record<string, PoolConfig>>, pool: string | null): Pick<PoolAudit, 'rule'> {
  if (pool === null) return {};
  const [cluster, queue] = splitPool(pool);
  const entry = poolByKey({ pools: pools as Record<string, PoolConfig> }, cluster, queue);
  if (entry === undefined) return {};
  return { rule: { key: entry.key, attestation: [...entry.attestation], enforcement: entry.enforcement, hostBound: entry.hostBound } };
}

function poolMatches(filter: string, pool: string | null): boolean {
  if (pool === null) return false;
  if (filter.endsWith('/*')) return splitPool(pool)[0] === filter.slice(0, -2);
  return pool === filter;
}

function splitPool(pool: string): [string, string] {
  const i = pool.indexOf('/');
  return [pool.slice(0, i), pool.slice(i + 1)];
}

/** `cluster/queue` from `context.agent.pool`, when it has that shape. */
function validPool(pool: string | undefined): string | undefined {
  return pool !== undefined && /^[^/]+\/[^/]+$/.test(pool) ? pool : undefined;
}

function strings(v: unknown): string[] {
  return Array.isArray(v) ? [...new Set(v.filter((m): m is string => typeof m === 'string' && m !== ''))].sort() : [];
}

/** Non-compliant rows first, then by agent id. */
function compareRows(a: AgentAuditRow, b: AgentAuditRow): number {
  if ((a.unmet.length > 0) !== (b.unmet.length > 0)) return a.unmet.length > 0 ? -1 : 1;
  return (a.agentId ?? '\uffff').localeCompare(b.agentId ?? '\uffff') || a.first.localeCompare(b.first);
}
