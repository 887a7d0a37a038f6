/**
 * Summarizes a V8 .cpuprofile (from `node --cpu-prof`): self time by package/module,
 * the top functions by self time, and inclusive time of the functions on Port's request
 * path. Only the main JS thread is sampled: WebCrypto work that jose hands to libuv's
 * thread pool does not appear (it shows as the awaiting caller's idle time); blocking
 * native calls (better-sqlite3's fsync) count as self time of the calling function.
 *
 *   node bench/cpuprofile-summary.mjs FILE.cpuprofile [--top N] [--ops N]
 */
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

const IDLE = new Set(['(idle)', '(program)', '(garbage collector)', '(root)']);

function category(frame) {
  const { url, functionName } = frame;
  if (!url) return functionName === '(garbage collector)' ? '(garbage collector)' : functionName || '(native)';
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (nm) return nm[1];
  const dist = /\/dist\/(.*)$/.exec(url);
  if (dist) return `port: ${dist[1].replace(/\/[^/]+$/, '/')}`;
  if (url.startsWith('node:')) return 'node: ' + url.slice(5).split('/')[0];
  if (url.includes('/bench/')) return 'bench';
  return url;
}

function key(frame) {
  const file = frame.url ? frame.url.replace(/^.*\/(node_modules|dist)\//, '$1/').replace(/^file:\/\//, '') : '';
  return `${frame.functionName || '(anonymous)'} ${file}${frame.url ? ':' + (frame.lineNumber + 1) : ''}`;
}

/**
 * Exclusive buckets for "where the time goes": each sample goes to the first bucket
 * that matches any frame of its stack (so jose called from the verifier counts as crypto).
 */
const BUCKETS = [
  ['Cedar decisions (PolicyEngine.decide: marshalling + wasm)', (f) => f.functionName === 'decide' && f.url.endsWith('/dist/policy/engine.js')],
  ['SQLite group commit (WriteBatcher.flush: statements, hash chain, COMMIT + fsync)', (f) => f.functionName === 'flush' && f.url.endsWith('/dist/store/sqlite/write-batcher.js')],
  ['JWT crypto on the main thread (jose + WebCrypto dispatch)', (f) => f.url.includes('/node_modules/jose/') || f.url.startsWith('node:internal/crypto/')],
  ['Token verifier, issuer, exchange logic (Port JS outside the above)', (f) => /\/dist\/(broker|identity|issuer|audit|policy|revocation)\//.test(f.url)],
  ['HTTP + Fastify (parsing, routing, form body, reply, sockets)', (f) => /\/node_modules\/(fastify|@fastify|find-my-way|light-my-request|avvio|fast-json-stringify|secure-json-parse|abstract-logging|process-warning|toad-cache)/.test(f.url) || /^node:(_http|net|internal\/(http|stream|streams|net))/.test(f.url) || ['writev', 'writeUtf8String', 'writeBuffer', 'onStreamRead'].includes(f.functionName) || f.url.endsWith('/dist/server/port-server.js') || f.url.includes('/dist/server/')],
  ['Garbage collector', (f) => f.functionName === '(garbage collector)'],
];

export function summarizeProfile(file, options = {}) {
  const { top = 20, ops, processCpuMs } = typeof options === 'number' ? { top: options } : options;
  const prof = JSON.parse(readFileSync(file, 'utf8'));
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const self = new Map();
  const inclusive = new Map();
  const cats = new Map();
  const buckets = new Map();
  let total = 0;
  let idle = 0;
  for (let i = 0; i < prof.samples.length; i++) {
    const dt = (prof.timeDeltas[i + 1] ?? 0) / 1000; // ms until the next sample
    const node = byId.get(prof.samples[i]);
    total += dt;
    if (node.callFrame.functionName === '(idle)') {
      idle += dt;
      continue;
    }
    const k = key(node.callFrame);
    self.set(k, (self.get(k) ?? 0) + dt);
    const c = category(node.callFrame);
    cats.set(c, (cats.get(c) ?? 0) + dt);
    const stack = [];
    for (let id = node.id; id !== undefined; id = parent.get(id)) stack.push(byId.get(id).callFrame);
    const bucket = BUCKETS.find(([, match]) => stack.some(match))?.[0] ?? 'Other (node internals, timers, microtask plumbing, program)';
    buckets.set(bucket, (buckets.get(bucket) ?? 0) + dt);
    const seen = new Set();
    for (let id = node.id; id !== undefined; id = parent.get(id)) {
      const f = byId.get(id).callFrame;
      if (IDLE.has(f.functionName)) continue;
      const kk = key(f);
      if (seen.has(kk)) continue;
      seen.add(kk);
      inclusive.set(kk, (inclusive.get(kk) ?? 0) + dt);
    }
  }
  const busy = total - idle;
  const pct = (v) => `${((v / busy) * 100).toFixed(1)}%`;
  const sortDesc = (m) => [...m.entries()].sort((a, b) => b[1] - a[1]);

  const lines = [];
  lines.push(`Profile ${file}: ${(total / 1000).toFixed(1)} s sampled, main thread busy ${(busy / 1000).toFixed(1)} s (${((busy / total) * 100).toFixed(0)}%), idle ${(idle / 1000).toFixed(1)} s`);
  const per = (v) => (ops ? `${Math.round((v / ops) * 1000).toString().padStart(5)} µs/op  ` : '');
  if (ops) {
    lines.push(
      `${ops} operations: main thread busy ${Math.round((busy / ops) * 1000)} µs per operation` +
        (processCpuMs ? `; process CPU (all threads) ${Math.round((processCpuMs / ops) * 1000)} µs per operation` : ''),
    );
  }
  lines.push('', 'Where the main thread\'s busy time goes (exclusive buckets):');
  for (const [b, v] of sortDesc(buckets)) lines.push(`  ${pct(v).padStart(6)}  ${per(v)}${b}`);
  lines.push('', 'Self time by package/module (share of busy main-thread time):');
  for (const [c, v] of sortDesc(cats).slice(0, top)) lines.push(`  ${pct(v).padStart(6)}  ${(v / 1000).toFixed(2).padStart(6)} s  ${c}`);
  lines.push('', `Top ${top} functions by self time:`);
  for (const [k, v] of sortDesc(self).slice(0, top)) lines.push(`  ${pct(v).padStart(6)}  ${per(v)}${k}`);
  const interesting = /dist\/(broker|identity|issuer|policy|audit|store|server)|node_modules\/(jose|better-sqlite3|fastify|@cedar-policy|find-my-way|light-my-request|@fastify)/;
  lines.push('', 'Inclusive time of Port and library functions (share of busy main-thread time):');
  for (const [k, v] of sortDesc(inclusive)
    .filter(([k]) => interesting.test(k))
    .slice(0, top + 10)) {
    lines.push(`  ${pct(v).padStart(6)}  ${per(v)}${k}`);
  }
  return { text: lines.join('\n'), busyMs: busy, totalMs: total };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const file = process.argv[2];
  if (!file) {
    console.error('usage: node bench/cpuprofile-summary.mjs FILE.cpuprofile [--top N]');
    process.exit(2);
  }
  const t = process.argv.indexOf('--top');
  const o = process.argv.indexOf('--ops');
  console.log(summarizeProfile(file, { top: t > 0 ? Number(process.argv[t + 1]) : 20, ops: o > 0 ? Number(process.argv[o + 1]) : undefined }).text);
}
