/**
 * bench/policy — what one policy decision costs as Port makes it (`PolicyEngine.decide`, from
 * ../dist), by policy count and by path through the engine, against the plain cedar-wasm call
 * in the same run:
 *
 *   plain        every decision a `statefulIsAuthorized` call over the whole set (`decisionMemo: 0, slicing: false`): how Port decided before the memo and slices
 *   slices       every decision a Cedar call, over only the policies whose scope can match (`decisionMemo: 0`)
 *   memo         the default: the decision memo in front of the slices (hit rate shown)
 *
 * over 10, 100 and 1,000 generated policies (bench/policies.mjs) with exchange and assume
 * requests for varied jobs, and over the relay bench's 3 proxy policies with a new path on
 * every request. Aim: a decision with 1,000 policies costs ≤ 2× one with 10.
 *
 *   npm run bench:policy [-- --decisions N] [--warmup N] [--cpu N | --no-pin]
 *
 * Decisions are synchronous and run back to back on one core (pinned with taskset when it works).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { PolicyEngine } from '../dist/policy/engine.js';
import { jobRequestParts, upstreamRef } from '../dist/policy/entities.js';
import { cpuMs, fmt, optionReader, reexecPinned, summarize, tasksetWorks } from './lib.mjs';
import { RELAY_POLICIES, decisionRequests, generatePolicies, identity } from './policies.mjs';

const { values: opts } = parseArgs({
  options: {
    decisions: { type: 'string', default: '20000' },
    warmup: { type: 'string', default: '2000' },
    cpu: { type: 'string', default: '1' },
    'no-pin': { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
});
if (opts.help) {
  console.log('npm run bench:policy [-- --decisions N (20000)] [--warmup N (2000)] [--cpu N (1) | --no-pin]');
  process.exit(0);
}
const { posInt } = optionReader('policy', opts);
const decisions = posInt('decisions');
const warmup = posInt('warmup');
const pin = !opts['no-pin'] && tasksetWorks(Number(opts.cpu));

const MODES = [
  { name: 'plain', label: 'plain cedar-wasm call, whole set (before the fast path)', options: { decisionMemo: 0, slicing: false } },
  { name: 'slices', label: 'Cedar on every decision, scope slices only', options: { decisionMemo: 0 } },
  { name: 'memo', label: 'decision memo + slices (the default)', options: {} },
];

/** `n` exchange forbids on the organization, each on its own branch prefix (never matching the bench's jobs). */
function sameScope(n) {
  let text = '';
  for (let k = 0; k < n; k++) {
    text += `@id("exchange-guard-${k}")\nforbid (principal, action == Port::Action::"exchange", resource == Port::Organization::"acme")\nwhen { principal.branch like "guarded-${k}/*" };\n`;
  }
  return text;
}

async function main() {
  const dirs = [];
  const open = async (files, options) => {
    const dir = mkdtempSync(join(tmpdir(), 'port-bench-policy-'));
    dirs.push(dir);
    for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
    const engine = await PolicyEngine.open(dir, options);
    engine.warmUp();
    return engine;
  };
  // Distinct jobs for every decision of the run: the memo only hits where two jobs look the same to the policies.
  const exchangeRequests = await decisionRequests(warmup + decisions, false);
  const relayRequests = Array.from({ length: warmup + decisions }, (_, i) => {
    const { principal, entities } = jobRequestParts({ ...identity(i), branch: 'main' });
    return { principal, action: 'proxy', resource: upstreamRef('bench'), context: { method: 'GET', path: `/u/${i}/${(i * 7919) % 10007}` }, entities };
  });
  const sets = [
    { label: '10 generated policies', files: generatePolicies(10), requests: exchangeRequests },
    { label: '100 generated policies', files: generatePolicies(100), requests: exchangeRequests },
    { label: '1,000 generated policies', files: generatePolicies(1000), requests: exchangeRequests },
    // The worst case for slicing: 990 more policies all on the one organization and action.
    { label: '10 generated + 990 exchange forbids on the organization (nothing to slice)', files: { ...generatePolicies(10), 'same-scope.cedar': sameScope(990) }, requests: exchangeRequests },
    { label: "relay bench's set (3 proxy + 4 exchange/assume), a new path every request", files: RELAY_POLICIES, requests: relayRequests },
  ];
  const results = [];
  try {
    for (const set of sets) {
      for (const mode of MODES) {
        const engine = await open(set.files, mode.options);
        for (let i = 0; i < warmup; i++) engine.decide(set.requests[i]);
        const before = engine.memoStats;
        const lat = new Float64Array(decisions);
        const counts = { allow: 0, deny: 0, errors: 0 };
        const cpu0 = cpuMs();
        const t0 = performance.now();
        for (let i = 0; i < decisions; i++) {
          const s = performance.now();
          const d = engine.decide(set.requests[warmup + i]);
          lat[i] = performance.now() - s;
          counts[d.decision]++;
          if (d.errors.length > 0) counts.errors++;
        }
        const elapsed = performance.now() - t0;
        const after = engine.memoStats;
        const hits = after.hits - before.hits;
        results.push({
          set,
          mode,
          policies: engine.policies.length,
          hitRate: mode.name === 'memo' ? hits / decisions : undefined,
          ...summarize(lat, elapsed, { cpuMs: cpuMs() - cpu0, ...counts }),
        });
      }
    }
  } finally {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  }

  const us = (r) => fmt.us((r.cpuMs / r.ops) * 1000);
  const lines = [
    '| Policy set | Path through the engine | Decisions | Rate | p50 | p99 | CPU/decision | Memo hits | Allow / deny |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...results.map(
      (r) =>
        `| ${r.set.label} (${r.policies}) | ${r.mode.label} | ${fmt.int(r.ops)} | ${fmt.int(r.perSecond)}/s | ${fmt.ms(r.p50)} | ${fmt.ms(r.p99)} | ${us(r)} | ${r.hitRate === undefined ? '—' : `${(r.hitRate * 100).toFixed(1)} %`} | ${r.allow} / ${r.deny} |`,
    ),
  ];
  const find = (set, mode) => results.find((r) => r.set.label === set && r.mode.name === mode);
  const ratios = MODES.map((m) => {
    const ten = find('10 generated policies', m.name);
    const thousand = find('1,000 generated policies', m.name);
    const ratio = thousand.cpuMs / thousand.ops / (ten.cpuMs / ten.ops);
    return `- ${m.label}: 1,000 policies cost **${ratio.toFixed(2)}×** 10 (${us(thousand)} vs ${us(ten)} per decision)${m.name === 'plain' ? '' : ` — aim ≤ 2×: **${ratio <= 2 ? 'met' : 'missed'}**`}.`;
  });
  const relayPlain = find(sets[4].label, 'plain');
  const relayMemo = find(sets[4].label, 'memo');
  const worst = MODES.map((m) => {
    const ten = find('10 generated policies', m.name);
    const same = find(sets[3].label, m.name);
    return `${m.name} ${((same.cpuMs / same.ops) / (ten.cpuMs / ten.ops)).toFixed(2)}×`;
  });
  const cpuModel = os.cpus()[0]?.model ?? 'unknown';
  console.log(
    [
      '',
      ...lines,
      '',
      ...ratios,
      `- With 1,000 policies on one organization and action (nothing for slices to leave out), against 10: ${worst.join(', ')} — Cedar on a memo miss then costs what the whole set costs.`,
      `- Relay decisions, a new path every request: ${us(relayMemo)} per decision with the memo against ${us(relayPlain)} for the plain call (${((relayPlain.cpuMs / relayPlain.ops) / (relayMemo.cpuMs / relayMemo.ops)).toFixed(1)}× less).`,
      `- Requests: ${fmt.int(decisions)} timed after ${fmt.int(warmup)} warm-up, every one a different job (ids, build numbers, commits, agents); exchange and assume alternate (bench/policies.mjs decisionRequests); the relay row's paths are all different (like the relay bench's \`/u/<run>/<n>\`). Each row's engine is fresh (empty memo) before its warm-up.`,
      '',
      `Machine: ${os.cpus().length} CPUs, ${cpuModel}, Node ${process.version}; ${pin ? `pinned to CPU ${opts.cpu}` : 'unpinned'}; 1-min load average at the end ${os.loadavg()[0].toFixed(2)}.`,
      `Command: \`npm run bench:policy\``,
    ].join('\n'),
  );
}

// The pinned child (or this process, unpinned) runs the bench.
if (!(pin && reexecPinned(new URL(import.meta.url).pathname, Number(opts.cpu)))) await main();
