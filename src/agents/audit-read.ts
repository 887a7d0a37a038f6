import type { DecisionLogStore } from '../store/store.js';
import { AgentAuditCollector, type AgentAuditOptions, type AgentAuditReport } from './audit-report.js';

const PAGE = 1000;

/**
 * Reads the decision log in pages, as `port audit export` does, and builds the agent audit.
 * The whole log is read: decisions are appended in batches, so their times are nearly but
 * not strictly in seq order, and no entry may be missed by stopping early. Memory holds one
 * accumulator per agent and state, never the records.
 */
export async function readAgentAudit(decisions: Pick<DecisionLogStore, 'read'>, opts: AgentAuditOptions, pageSize = PAGE): Promise<AgentAuditReport> {
  const collector = new AgentAuditCollector(opts);
  let after = 0;
  for (;;) {
    const page = await decisions.read(after, pageSize);
    let progressed = false;
    for (const e of page) {
      // Out of order (a store fault `port audit verify` reports): skipped, so we never loop.
      if (e.seq <= after) continue;
      collector.offer(e.record);
      after = e.seq;
      progressed = true;
    }
    if (page.length < pageSize || !progressed) return collector.report();
  }
}
