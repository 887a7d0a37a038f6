/**
 * Child of bench/exchange.mjs: runs Port (compiled, from ../dist) on 127.0.0.1:0 with a
 * temp config — SQLite file in a temp dir, the small policy set below — trusting the
 * Buildkite simulator the parent runs. The parent pins this process to one core.
 *
 * IPC: ← start {issuer, jwksUrl, audience, organization}   → ready {url, policies}
 *      ← usage                                             → usage {cpuMs, rusage}
 *      ← close  (closes Port, removes the temp dir, exits)
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { configFromObject } from '../dist/config/config.js';
import { startPort } from '../dist/server/port-server.js';
import { childMain, cpuMs } from './lib.mjs';

/** Like test/helpers/port-harness.ts TEST_POLICIES: an exchange permit, a forbid, two assume permits. */
export const EXCHANGE_POLICIES = {
  'exchange.cedar': `
@id("acme-jobs-exchange")
@reason("jobs of acme may hold a Port token")
permit (principal, action == Port::Action::"exchange", resource == Port::Organization::"acme");

@id("no-untrusted-pipeline")
@reason("the untrusted pipeline never gets a Port token")
forbid (principal, action == Port::Action::"exchange", resource)
when { principal.pipeline_slug == "untrusted" };
`,
  'credentials.cedar': `
@id("deploy-from-main")
@reason("deploys come from main of acme/deploy")
permit (principal, action == Port::Action::"assume", resource == Port::Credential::"deploy-token")
when { principal.pipeline_slug == "deploy" && principal.branch == "main" };

@id("npm-on-tags")
@reason("packages are published from tag builds")
permit (principal, action == Port::Action::"assume", resource == Port::Credential::"npm-publish")
when { principal.tag != "" };
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
  async start({ issuer, jwksUrl, audience, organization }) {
    dir = mkdtempSync(join(tmpdir(), 'port-bench-'));
    const policiesDir = join(dir, 'policies');
    mkdirSync(policiesDir);
    for (const [name, text] of Object.entries(EXCHANGE_POLICIES)) writeFileSync(join(policiesDir, name), text);
    const raw = {
      server: { listen: '127.0.0.1:0', public_url: audience, log_level: 'silent' },
      store: { sqlite: './port.db' },
      buildkite: { organization, issuer, jwks_url: jwksUrl, audience },
      policies: './policies',
      credentials: { 'deploy-token': { type: 'port_token' }, 'npm-publish': { type: 'secret' } },
    };
    const file = join(dir, 'port.yaml');
    writeFileSync(file, stringify(raw));
    port = await startPort(configFromObject(raw, file), { logger: false });
    process.send({ type: 'ready', url: port.url, policies: port.policy.policies.length });
  },
  usage() {
    process.send({ type: 'usage', cpuMs: cpuMs(), rusage: process.resourceUsage() });
  },
  async close() {
    await close();
    // Let --cpu-prof write its profile on a normal exit.
    if (process.connected) process.disconnect();
    process.exitCode ??= 0;
    setTimeout(() => process.exit(), 50).unref();
  },
});
