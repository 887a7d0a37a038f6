/**
 * Where Port's relay spends its main-thread time, from a V8 .cpuprofile of the Port
 * process taken during a timed wrk run (bench/relay.mjs --profile): exclusive buckets
 * for the relay's steps, and the inclusive time of the relay's and undici's functions.
 * The generic parts (self time by module, top functions) come from cpuprofile-summary.mjs.
 *
 *   node bench/relay-profile.mjs FILE.cpuprofile [--ops N]
 */
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { summarizeProfile } from './cpuprofile-summary.mjs';

const dist = (f, path) => f.url.includes(`/dist/${path}`);
/** Each sample goes to the first bucket that matches any frame of its stack. */
const BUCKETS = [
  ['Cedar decision (PolicyEngine.decide: request marshalling + wasm)', (f) => f.functionName === 'decide' && dist(f, 'policy/engine.js')],
  ['Entities for the decision (jobRequestParts, upstreamRef, entityString)', (f) => dist(f, 'policy/entities.js') || dist(f, 'broker/token-exchange.js')],
  ['Caller auth (token cache, expiry, revocation check)', (f) => dist(f, 'relay/caller-auth.js') || dist(f, 'revocation/')],
  ['Path normalisation', (f) => dist(f, 'relay/path/')],
  ['Header hygiene (framing checks, upstream/downstream header rewrite)', (f) => dist(f, 'relay/headers/')],
  ['Decision cache + allow log', (f) => dist(f, 'relay/decision-cache.js') || dist(f, 'relay/allow-log.js') || dist(f, 'audit/')],
  ['Credential injection, body limit, relay errors', (f) => dist(f, 'relay/credential-injector.js') || dist(f, 'relay/body-limit.js') || dist(f, 'relay/relay-error.js')],
  ['undici (request to the upstream, its parser and body stream)', (f) => f.url.includes('/node_modules/undici/')],
  ['Relay.handle/admit/forward (own JS, pipeline set-up)', (f) => dist(f, 'relay/relay.js') || dist(f, 'server/port-server.js')],
  ['Node HTTP server (parser, ServerResponse, writes)', (f) => /^node:(_http_|internal\/http)/.test(f.url) || ['parserOnHeadersComplete', 'parserOnIncoming', 'writev', 'writeUtf8String', 'writeBuffer', 'writeLatin1String'].includes(f.functionName)],
  ['Node streams, sockets, timers, microtasks', (f) => /^node:(net|stream|internal\/(streams|stream_base_commons|timers|process|async_hooks))/.test(f.url) || f.functionName === 'onStreamRead'],
  ['Garbage collector', (f) => f.functionName === '(garbage collector)'],
];
const INCLUSIVE = (f) => /\/dist\/(relay|policy|server|revocation)\//.test(f.url) || f.url.includes('/node_modules/undici/') || f.url.includes('/node_modules/@cedar-policy/');

export function relayProfile(file, { ops, processCpuMs, top = 20 } = {}) {
  const prof = JSON.parse(readFileSync(file, 'utf8'));
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const buckets = new Map();
  const inclusive = new Map();
  let busy = 0;
  for (let i = 0; i < prof.samples.length; i++) {
    const dt = (prof.timeDeltas[i + 1] ?? 0) / 1000;
    const node = byId.get(prof.samples[i]);
    if (node.callFrame.functionName === '(idle)') continue;
    busy += dt;
    const stack = [];
    for (let id = node.id; id !== undefined; id = parent.get(id)) stack.push(byId.get(id).callFrame);
    const b = BUCKETS.find(([, match]) => stack.some(match))?.[0] ?? 'Other (program, native, unattributed)';
    buckets.set(b, (buckets.get(b) ?? 0) + dt);
    const seen = new Set();
    for (const f of stack) {
      if (!INCLUSIVE(f)) continue;
      const k = `${f.functionName || '(anonymous)'} ${f.url.replace(/^.*\/(node_modules|dist)\//, '$1/')}:${f.lineNumber + 1}`;
      if (seen.has(k)) continue;
      seen.add(k);
      inclusive.set(k, (inclusive.get(k) ?? 0) + dt);
    }
  }
  const pct = (v) => `${((v / busy) * 100).toFixed(1)}%`.padStart(6);
  const per = (v) => (ops ? `${((v / ops) * 1000).toFixed(1).padStart(6)} µs/req  ` : '');
  const sortDesc = (m) => [...m.entries()].sort((a, b) => b[1] - a[1]);
  const lines = [];
  lines.push("Where the relay's main-thread time goes (exclusive buckets, first match on the stack):");
  for (const [b, v] of sortDesc(buckets)) lines.push(`  ${pct(v)}  ${per(v)}${b}`);
  lines.push('', 'Inclusive time of relay, policy and undici functions:');
  for (const [k, v] of sortDesc(inclusive).slice(0, top + 10)) lines.push(`  ${pct(v)}  ${per(v)}${k}`);
  const generic = summarizeProfile(file, { top, ops, processCpuMs }).text;
  // From the generic summary keep the module and top-function sections (its buckets are the exchange's).
  const keep = generic.split('\n\n').filter((s) => /^(Profile |Self time by package|Top \d+ functions)/.test(s));
  return { text: [keep[0], lines.join('\n'), ...keep.slice(1)].join('\n\n'), busyMs: busy };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const file = process.argv[2];
  if (!file) {
    console.error('usage: node bench/relay-profile.mjs FILE.cpuprofile [--ops N]');
    process.exit(2);
  }
  const o = process.argv.indexOf('--ops');
  console.log(relayProfile(file, { ops: o > 0 ? Number(process.argv[o + 1]) : undefined }).text);
}
