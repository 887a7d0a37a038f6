/**
 * Child of bench/approvals.mjs: runs Port (compiled, from ../dist) on 127.0.0.1:0 with the
 * approvals flow configured as test/approvals/approvals-webhook.e2e.test.ts configures it —
 * `buildkite.api_url` at the parent's Buildkite simulator, `api_token` and `webhook_secret`
 * as `env:` secret references — and the e2e test's policy set: bench/policies.mjs's exchange
 * and assume policies plus APPROVAL_POLICIES, read from test/helpers/approval-policies.ts.
 * Port's SQLite store is a temp dir (WAL, its log synced before a write is acknowledged, as shipped). The people whose
 * groups policy reads are written through Port's own store after start (`store.upsertUser`),
 * the in-process step the e2e test takes. The parent pins this process to one core.
 *
 * IPC: ← start {simUrl, issuer, jwksUrl, audience, organization, apiToken, webhookSecret, users, storeDir?}
 *                                                    → ready {url, policies}
 *      ← usage                                       → usage {cpuMs, threads}
 *      ← trace-start                                 → trace-started   (per-delivery spans on)
 *      ← trace-stop                                  → trace {deliveries: [{start, events}]}
 *      ← log-summary                                 → log-summary {counts}  (decision log by action/decision/policy)
 *      ← close  (closes Port, removes the temp dir, exits)
 *
 * Tracing, for one delivery in flight at a time: `http.server.request.start` on
 * /webhooks/buildkite opens a delivery; `http.server.response.finish` (the 202), undici's
 * `undici:request:create` / `undici:request:headers` (Port's REST GET and PUT), and wrappers
 * around this instance's `store.consumeOnce` / `appendDecisions` / `getUser` /
 * `getApprovalRequestByJob` and `policy.decide` add timestamped events to it. The
 * wrappers are installed by trace-start and removed by trace-stop.
 */
import diagnostics from 'node:diagnostics_channel';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { stringify } from 'yaml';
import { configFromObject } from '../dist/config/config.js';
import { startPort } from '../dist/server/port-server.js';
import { childMain, cpuMs, threadCpuMs } from './lib.mjs';
import { EXCHANGE_POLICIES } from './policies.mjs';

let port;
let dir;

/** APPROVAL_POLICIES from the e2e tests' helper: one source for the test and the bench. */
function approvalPolicies() {
  const file = new URL('../test/helpers/approval-policies.ts', import.meta.url);
  const text = readFileSync(file, 'utf8');
  const m = /export const APPROVAL_POLICIES\s*=\s*`([^`]*)`/.exec(text);
  if (!m || m[1].includes('${') || !m[1].includes('@id("release-tags-open")')) {
    throw new Error(`${file.pathname}: could not read APPROVAL_POLICIES (a plain template literal with @id("release-tags-open") is expected)`);
  }
  return m[1];
}

async function close() {
  const p = port;
  port = undefined;
  try {
    await p?.close();
  } finally {
    if (dir) rmSync(dir, { recursive: true, force: true });
    dir = undefined;
  }
}

// ---- tracing ------------------------------------------------------------------------------

let tracing = false;
let deliveries = [];
let current;
const now = () => performance.now();
const KIND = Symbol('port-bench-kind');
const isHook = (req) => typeof req?.url === 'string' && req.url.startsWith('/webhooks/buildkite');

diagnostics.subscribe('http.server.request.start', ({ request }) => {
  if (!tracing || !isHook(request)) return;
  current = { start: now(), events: [] };
  deliveries.push(current);
});
diagnostics.subscribe('http.server.response.finish', ({ request, response }) => {
  if (tracing && current && isHook(request)) current.events.push([`answer ${response.statusCode}`, now()]);
});
diagnostics.subscribe('undici:request:create', ({ request }) => {
  if (!tracing || !current) return;
  request[KIND] = request.method;
  current.events.push([`${request.method} sent`, now()]);
});
diagnostics.subscribe('undici:request:headers', ({ request }) => {
  if (tracing && current && request[KIND]) current.events.push([`${request[KIND]} answered`, now()]);
});

const restore = [];
function wrapAsync(obj, name) {
  const own = Object.hasOwn(obj, name);
  const orig = obj[name];
  obj[name] = async function (...args) {
    const d = current;
    if (!tracing || !d) return orig.apply(this, args);
    const ev = [name, now(), NaN];
    d.events.push(ev);
    try {
      return await orig.apply(this, args);
    } finally {
      ev[2] = now();
    }
  };
  restore.push(() => (own ? (obj[name] = orig) : delete obj[name]));
}
function wrapSync(obj, name) {
  const own = Object.hasOwn(obj, name);
  const orig = obj[name];
  obj[name] = function (...args) {
    const d = current;
    if (!tracing || !d) return orig.apply(this, args);
    const ev = [name, now(), NaN];
    d.events.push(ev);
    try {
      return orig.apply(this, args);
    } finally {
      ev[2] = now();
    }
  };
  restore.push(() => (own ? (obj[name] = orig) : delete obj[name]));
}

childMain({
  async start({ simUrl, issuer, jwksUrl, audience, organization, apiToken, webhookSecret, users, storeDir }) {
    dir = mkdtempSync(join(storeDir ?? tmpdir(), 'port-bench-approvals-'));
    const policiesDir = join(dir, 'policies');
    mkdirSync(policiesDir);
    for (const [name, text] of Object.entries({ ...EXCHANGE_POLICIES, 'approvals.cedar': approvalPolicies() })) writeFileSync(join(policiesDir, name), text);
    // Secrets by reference, as in the e2e test (never in the config file).
    process.env.PORT_BENCH_BK_API_TOKEN = apiToken;
    process.env.PORT_BENCH_WEBHOOK_SECRET = webhookSecret;
    const raw = {
      server: { listen: '127.0.0.1:0', public_url: audience, log_level: 'silent' },
      store: { sqlite: './port.db' },
      buildkite: {
        organization,
        issuer,
        jwks_url: jwksUrl,
        audience,
        api_url: simUrl,
        api_token: 'env:PORT_BENCH_BK_API_TOKEN',
        webhook_secret: 'env:PORT_BENCH_WEBHOOK_SECRET',
      },
      policies: './policies',
    };
    const file = join(dir, 'port.yaml');
    writeFileSync(file, stringify(raw));
    port = await startPort(configFromObject(raw, file), { logger: false, watchPolicies: false, createStore: true });
    for (const u of users) await port.store.upsertUser({ email: u.email, active: true, groups: u.groups, updatedAt: Date.now() });
    process.send({ type: 'ready', url: port.url, policies: port.policy.policies.length });
  },
  usage() {
    process.send({ type: 'usage', cpuMs: cpuMs(), threads: threadCpuMs() });
  },
  'trace-start'() {
    for (const name of ['consumeOnce', 'appendDecisions', 'getUser', 'getApprovalRequestByJob']) wrapAsync(port.store, name);
    wrapSync(port.policy, 'decide');
    deliveries = [];
    current = undefined;
    tracing = true;
    process.send({ type: 'trace-started' });
  },
  'trace-stop'() {
    tracing = false;
    current = undefined;
    for (const undo of restore.splice(0).reverse()) undo();
    process.send({ type: 'trace', deliveries });
    deliveries = [];
  },
  async 'log-summary'() {
    const counts = {};
    for (let after = 0; ; ) {
      const page = await port.store.readDecisions(after, 5000);
      if (page.length === 0) break;
      for (const e of page) {
        const k = `${e.record.action} ${e.record.decision}${e.record.policies?.length ? ` (${e.record.policies.map((p) => p.id).join(', ')})` : ''}`;
        counts[k] = (counts[k] ?? 0) + 1;
      }
      after = page.at(-1).seq;
    }
    process.send({ type: 'log-summary', counts });
  },
  async close() {
    await close();
    if (process.connected) process.disconnect();
    process.exitCode ??= 0;
    setTimeout(() => process.exit(), 50).unref();
  },
});
