/**
 * Child of bench/exchange.mjs (pinned to one core): in-process Cedar decisions with
 * Port's PolicyEngine (compiled, ../dist) over a temp folder of generated policies
 * (bench/policies.mjs), and over the small set the exchange server runs with.
 * decide() is synchronous, so decisions run one after another.
 *
 * IPC: ← start {decisions, warmup}   → result {large, small}
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { PolicyEngine } from '../dist/policy/engine.js';
import { childMain, cpuMs, summarize } from './lib.mjs';
import { EXCHANGE_POLICIES, decisionRequests, generatePolicies } from './policies.mjs';

const dirs = [];

async function openEngine(files) {
  const dir = mkdtempSync(join(tmpdir(), 'port-bench-cedar-'));
  dirs.push(dir);
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  const engine = await PolicyEngine.open(dir);
  engine.warmUp();
  return engine;
}

function run(engine, reqs, warmup, decisions) {
  for (let i = 0; i < warmup; i++) engine.decide(reqs[i % reqs.length]);
  const lat = new Float64Array(decisions);
  const counts = { allow: 0, deny: 0, errors: 0 };
  const cpu0 = cpuMs();
  const t0 = performance.now();
  for (let i = 0; i < decisions; i++) {
    const s = performance.now();
    const d = engine.decide(reqs[i % reqs.length]);
    lat[i] = performance.now() - s;
    counts[d.decision]++;
    if (d.errors.length > 0) counts.errors++;
  }
  const elapsed = performance.now() - t0;
  return summarize(lat, elapsed, { cpuMs: cpuMs() - cpu0, policies: engine.policies.length, entities: reqs[0].entities.length, ...counts });
}

function cleanup() {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
}

childMain({
  async start({ decisions, warmup, policies }) {
    try {
      const large = await openEngine(generatePolicies(policies));
      const small = await openEngine(EXCHANGE_POLICIES);
      const result = {
        large: run(large, await decisionRequests(96, false), warmup, decisions),
        small: run(small, await decisionRequests(96, true), warmup, decisions),
      };
      process.send({ type: 'result', ...result });
    } finally {
      cleanup();
    }
  },
  close() {
    cleanup();
    process.exit(0);
  },
});
