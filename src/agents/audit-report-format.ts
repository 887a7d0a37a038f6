import type { AgentAuditReport, AgentAuditRow, AttestationSeen, PoolAudit, Received } from './audit-report.js';

/**
 * `port agents audit` output: a table per pool with one verdict line each, then the
 * overall verdict; or (`--json`) the report with snake_case keys, as Port's other JSON is.
 */
export function agentAuditText(report: AgentAuditReport): string {
  const lines: string[] = [];
  const scope = report.pool !== undefined ? ` in pool ${report.pool}` : '';
  if (report.pools.length === 0) {
    lines.push(`No agent received anything${scope} from ${report.since} to ${report.until}.`);
    lines.push('OK: nothing to audit in this window.');
    return `${lines.join('\n')}\n`;
  }
  lines.push(`Agents that received anything${scope} from ${report.since} to ${report.until}:`);
  for (const p of report.pools) {
    lines.push('', poolHeading(p), ...table(p.rows), `  ${poolVerdict(p)}`);
  }
  const failing = report.pools.filter((p) => !p.ok).map((p) => p.pool!);
  lines.push(
    '',
    report.ok
      ? 'OK: every pool that requires attestation served only agents attested with every method it requires.'
      : `FAILED: ${plural(failing.length, 'pool')} (${failing.join(', ')}) served agents not attested as the pool now requires; see the rows marked NOT ATTESTED.`,
  );
  return `${lines.join('\n')}\n`;
}

export function agentAuditJson(report: AgentAuditReport): string {
  return `${JSON.stringify(
    {
      ok: report.ok,
      since: report.since,
      until: report.until,
      ...(report.pool !== undefined ? { pool_filter: report.pool } : {}),
      pools: report.pools.map((p) => ({
        pool: p.pool,
        rule: p.rule === undefined ? null : { key: p.rule.key, attestation: p.rule.attestation, enforcement: p.rule.enforcement, host_bound: p.rule.hostBound },
        ok: p.ok,
        agents: p.rows.map((r) => ({
          agent_id: r.agentId,
          attestation: r.attestation.recorded
            ? {
                recorded: true,
                attested: r.attestation.attested,
                methods: r.attestation.methods,
                missing: r.attestation.missing,
                ...(r.attestation.enforcement !== undefined ? { enforcement: r.attestation.enforcement } : {}),
              }
            : { recorded: false },
          received: { port_tokens: r.received.portTokens, credentials: r.received.credentials, upstreams: r.received.upstreams },
          decisions: r.decisions,
          first: r.first,
          last: r.last,
          unmet: r.unmet,
        })),
      })),
    },
    null,
    2,
  )}\n`;
}

function poolHeading(p: PoolAudit): string {
  const name = p.pool === null ? 'Jobs without pool claims (cluster_name, queue_key)' : `Pool ${p.pool}`;
  if (p.rule === undefined) return `${name} — no pools: entry`;
  const via = p.rule.key !== p.pool ? ` (pools.${p.rule.key})` : '';
  if (p.rule.attestation.length === 0) return `${name}${via} — requires no attestation`;
  return `${name}${via} — requires ${p.rule.attestation.join(' + ')}, enforcement: ${p.rule.enforcement}`;
}

function poolVerdict(p: PoolAudit): string {
  if (p.pool === null) return 'NOTE: these tokens named no pool, so no pool rule can judge them; Port refuses such tokens while any pool is configured.';
  if (p.rule === undefined || p.rule.attestation.length === 0) return 'OK: this pool requires no attestation.';
  const bad = p.rows.filter((r) => r.unmet.length > 0);
  const required = p.rule.attestation.join(' + ');
  if (bad.length === 0) return `OK: every agent was attested with ${required}.`;
  const agents = [...new Set(bad.map((r) => r.agentId ?? '(unknown agent)'))];
  return `FAIL: ${plural(agents.length, 'agent')} received something without ${required} attestation: ${bad.map((r) => `${r.agentId ?? '(unknown agent)'} (${receivedText(r.received)})`).join('; ')}.`;
}

function table(rows: AgentAuditRow[]): string[] {
  const cells = rows.map((r) => [r.agentId ?? '(unknown agent)', attestationText(r.attestation), receivedText(r.received), r.unmet.length > 0 ? `NOT ATTESTED (${r.unmet.join(', ')})` : 'ok']);
  const header = ['AGENT', 'ATTESTATION AT THE TIME', 'RECEIVED', 'VERDICT'];
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: string[]): string => `  ${c.map((v, i) => (i === c.length - 1 ? v : v.padEnd(widths[i]!))).join('  ')}`;
  return [line(header), ...cells.map(line)];
}

export function attestationText(a: AttestationSeen): string {
  if (!a.recorded) return 'unknown (no agent check recorded)';
  const methods = a.methods.length > 0 ? a.methods.join('+') : a.attested ? 'attested' : 'unattested';
  const notes = [...(a.missing.length > 0 ? [`missing ${a.missing.join('+')}`] : []), ...(a.enforcement === 'audit' ? ['audit mode'] : [])];
  return notes.length > 0 ? `${methods} (${notes.join('; ')})` : methods;
}

export function receivedText(r: Received): string {
  const parts: string[] = [];
  if (r.credentials.length > 0) parts.push(`credentials ${r.credentials.join(', ')}`);
  if (r.portTokens > 0) parts.push(r.portTokens === 1 ? 'Port token' : `${r.portTokens} Port tokens`);
  if (r.upstreams.length > 0) parts.push(`upstreams ${r.upstreams.join(', ')}`);
  return parts.join('; ');
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}
