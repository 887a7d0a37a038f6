import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { configFromObject, type PortConfig } from '../../src/config/config.js';
import { startPort, type RunningPort } from '../../src/server/port-server.js';
import { BuildkiteSimulator } from '../../src/sim/index.js';

export const TEST_POLICIES: Record<string, string> = {
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

export interface Harness {
  dir: string;
  sim: BuildkiteSimulator;
  port: RunningPort;
  config: PortConfig;
  url: string;
  audience: string;
  /** POSTs a form to Port and returns status, headers and parsed JSON body. */
  post(path: string, form: Record<string, string>, headers?: Record<string, string>): Promise<{ status: number; body: any; headers: Headers }>;
  /** RFC 8693 exchange of `subjectToken`. */
  exchange(subjectToken: string, extra?: Record<string, string>): Promise<{ status: number; body: any; headers: Headers }>;
  close(): Promise<void>;
}

export async function startHarness(
  opts: { policies?: Record<string, string>; config?: Record<string, unknown> | ((sim: BuildkiteSimulator) => Record<string, unknown>) } = {},
): Promise<Harness> {
  const dir = mkdtempSync(join(tmpdir(), 'port-test-'));
  const policiesDir = join(dir, 'policies');
  mkdirSync(policiesDir);
  for (const [name, text] of Object.entries(opts.policies ?? TEST_POLICIES)) writeFileSync(join(policiesDir, name), text);
  const sim = await BuildkiteSimulator.start({ organization: 'acme' });
  const audience = 'https://port.acme.test';
  const raw = {
    server: { listen: '127.0.0.1:0', public_url: 'https://port.acme.test', log_level: 'silent' },
    store: { sqlite: './port.db' },
    buildkite: { organization: 'acme', issuer: sim.issuer, jwks_url: sim.jwksUrl, audience },
    policies: './policies',
    audit: { checkpoint_every: 5 },
    credentials: { 'deploy-token': { type: 'port_token', audience: 'https://deploy.acme.test' }, 'npm-publish': { type: 'secret', value: 'command:printf %s harness-npm-secret' } },
    ...(typeof opts.config === 'function' ? opts.config(sim) : opts.config),
  };
  const configFile = join(dir, 'port.yaml');
  writeFileSync(configFile, stringify(raw));
  const config = configFromObject(raw, configFile);
  const port = await startPort(config, { logger: false, createStore: true });
  const post = async (path: string, form: Record<string, string>, headers: Record<string, string> = {}) => {
    const res = await fetch(`${port.url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
      body: new URLSearchParams(form).toString(),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined, headers: res.headers };
  };
  return {
    dir,
    sim,
    port,
    config,
    url: port.url,
    audience,
    post,
    exchange: (subjectToken, extra = {}) =>
      post('/oauth/token', {
        grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
        subject_token: subjectToken,
        subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
        ...extra,
      }),
    async close() {
      await port.close();
      await sim.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
