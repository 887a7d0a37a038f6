import type { SimJob } from '../../src/sim/types.js';
import { startHarness, type Harness } from '../helpers/port-harness.js';

export const CRED_POLICIES: Record<string, string> = {
  'exchange.cedar': `
@id("acme-jobs-exchange")
permit (principal, action == Port::Action::"exchange", resource == Port::Organization::"acme");
`,
  'credentials.cedar': `
@id("deploy-main-credentials")
@reason("deploys from main of acme/deploy get deploy credentials")
permit (principal, action == Port::Action::"assume", resource)
when { principal.pipeline_slug == "deploy" && principal.branch == "main" };
`,
};

export const ADMIN_TOKEN = 'admin-token-for-tests-0123456789';

/** A harness with the credential policies, an admin token and the given credentials/extra keys. */
export async function startCredsHarness(extra: Record<string, unknown> = {}, policies = CRED_POLICIES): Promise<Harness> {
  process.env.PORT_TEST_ADMIN_TOKEN = ADMIN_TOKEN;
  return startHarness({
    policies,
    config: {
      server: { listen: '127.0.0.1:0', public_url: 'https://port.acme.test', log_level: 'silent', admin_token: 'env:PORT_TEST_ADMIN_TOKEN' },
      ...extra,
    },
  });
}

/** A job of acme/deploy on main (allowed by CRED_POLICIES). */
export function deployJob(h: Harness, init: Partial<SimJob> = {}): SimJob {
  return h.sim.createJob({ pipelineSlug: 'deploy', branch: 'main', ...init });
}

/** Exchanges a fresh Buildkite token of `job` for a Port token holding `scope`. */
export async function portToken(h: Harness, job: SimJob, scope: string): Promise<string> {
  const bk = await h.sim.mintToken(job, { audience: h.audience });
  const res = await h.exchange(bk, { scope });
  if (res.status !== 200) throw new Error(`exchange failed: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body.access_token as string;
}

export interface Answer {
  status: number;
  body: any;
  headers: Headers;
}

/** POST /v1/credentials/{name} as a job would. */
export async function release(h: Harness, name: string, bearer: string | undefined, init: RequestInit = {}): Promise<Answer> {
  const headers: Record<string, string> = { ...(init.headers as Record<string, string> | undefined) };
  if (bearer !== undefined) headers.authorization = `Bearer ${bearer}`;
  const res = await fetch(`${h.url}/v1/credentials/${name}`, { method: 'POST', ...init, headers });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined, headers: res.headers };
}

/** Admin API call. */
export async function admin(h: Harness, method: 'GET' | 'POST', path: string, token = ADMIN_TOKEN): Promise<Answer> {
  const res = await fetch(`${h.url}${path}`, { method, headers: { authorization: `Bearer ${token}` } });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined, headers: res.headers };
}

/** Every decision record after `afterSeq`. */
export async function decisionsSince(h: Harness, afterSeq: number) {
  return (await h.port.store.decisions.read(afterSeq, 10_000)).map((e) => e.record);
}

export async function headSeq(h: Harness): Promise<number> {
  return (await h.port.store.decisions.last())?.seq ?? 0;
}

/** Polls `check` until it returns a value (not undefined), or fails after `timeoutMs`. */
export async function eventually<T>(check: () => Promise<T | undefined>, timeoutMs = 15_000): Promise<T> {
  const started = Date.now();
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() - started > timeoutMs) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 100));
  }
}
