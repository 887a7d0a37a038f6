/**
 * Child of bench/relay.mjs: runs Port (compiled, from ../dist) on 127.0.0.1:0 with the
 * relay configured — one upstream `bench` (the bench upstream, `max_body: 2GiB`, a bearer
 * credential injected from the environment), RELAY_POLICIES below, the given
 * `relay.decision_cache_ttl` — trusting the Buildkite simulator the parent runs. The
 * parent pins this process to one core and watches it from outside (/proc).
 *
 * IPC: ← start {issuer, jwksUrl, audience, organization, upstreamUrl, decisionCacheTtl} → ready {url}
 *      ← profile-start / profile-stop {file}  (V8 sampling profiler, see lib.mjs)
 *      ← close  (closes Port, removes the temp dir, exits)
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { configFromObject } from '../dist/config/config.js';
import { startPort } from '../dist/server/port-server.js';
import { childMain, profilerHandlers } from './lib.mjs';
import { EXCHANGE_POLICIES } from './policies.mjs';

/** The exchange server's policies plus the relay's: reads anywhere, uploads under /stream, nothing under /admin. */
export const RELAY_POLICIES = {
  ...EXCHANGE_POLICIES,
  'relay.cedar': `
@id("bench-read")
@reason("acme jobs may read from the bench upstream")
permit (principal is Port::Job, action == Port::Action::"proxy", resource == Port::Upstream::"bench")
when { context.method == "GET" || context.method == "HEAD" };

@id("bench-upload")
@reason("deploy jobs may upload under /stream")
permit (principal is Port::Job, action == Port::Action::"proxy", resource == Port::Upstream::"bench")
when { principal.pipeline_slug == "deploy" && (context.method == "PUT" || context.method == "POST") && context.path like "/stream/*" };

@id("no-admin")
@reason("nobody reaches the admin area through the relay")
forbid (principal, action == Port::Action::"proxy", resource)
when { context.path like "/admin*" };
`,
};

let port;
let dir;

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

childMain({
  async start({ issuer, jwksUrl, audience, organization, upstreamUrl, decisionCacheTtl }) {
    dir = mkdtempSync(join(tmpdir(), 'port-bench-relay-'));
    const policiesDir = join(dir, 'policies');
    mkdirSync(policiesDir);
    for (const [name, text] of Object.entries(RELAY_POLICIES)) writeFileSync(join(policiesDir, name), text);
    process.env.PORT_BENCH_UPSTREAM_SECRET = 'bench-upstream-secret';
    const raw = {
      server: { listen: '127.0.0.1:0', public_url: audience, log_level: 'silent' },
      store: { sqlite: './port.db' },
      buildkite: { organization, issuer, jwks_url: jwksUrl, audience },
      policies: './policies',
      relay: { decision_cache_ttl: decisionCacheTtl },
      upstreams: { bench: { url: upstreamUrl, max_body: '2GiB', inject: { bearer: 'env:PORT_BENCH_UPSTREAM_SECRET' } } },
    };
    const file = join(dir, 'port.yaml');
    writeFileSync(file, stringify(raw));
    port = await startPort(configFromObject(raw, file), { logger: false, createStore: true });
    process.send({ type: 'ready', url: port.url });
  },
  ...profilerHandlers(),
  async close() {
    await close();
    if (process.connected) process.disconnect();
    process.exitCode ??= 0;
    setTimeout(() => process.exit(), 50).unref();
  },
});
