import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createRemoteJWKSet, decodeJwt, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BACKOFF_SCALE_ENV,
  BuildkiteSimulator,
  buildkiteAgentMain,
  writeBuildkiteAgentShim,
  type AgentIo,
  type SimJob,
} from '../../src/sim/index.js';
import { ensureDist } from './ensure-dist.js';

let sim: BuildkiteSimulator;

beforeAll(async () => {
  sim = await BuildkiteSimulator.start({ organization: 'acme' });
});
afterAll(async () => {
  await sim.close();
});

interface Run {
  code: number;
  stdout: string;
  stderr: string;
  sleeps: number[];
  requests: Array<{ url: string; body: unknown; headers: Headers }>;
}

async function run(
  args: string[],
  env: Record<string, string | undefined>,
  extra: Partial<AgentIo> = {},
): Promise<Run> {
  const out: Run = { code: -1, stdout: '', stderr: '', sleeps: [], requests: [] };
  const realFetch = extra.fetch ?? globalThis.fetch;
  out.code = await buildkiteAgentMain(args, {
    env,
    stdout: (t) => void (out.stdout += t),
    stderr: (t) => void (out.stderr += t),
    sleep: async (ms) => void out.sleeps.push(ms),
    readStdin: async () => '',
    ...extra,
    fetch: async (input, init) => {
      out.requests.push({
        url: String(input),
        body: init?.body === undefined ? undefined : JSON.parse(String(init.body)),
        headers: new Headers(init?.headers),
      });
      return realFetch(input, init);
    },
  });
  return out;
}

const requestToken = (...flags: string[]) => ['oidc', 'request-token', ...flags];

async function verified(token: string, audience: string) {
  const { payload } = await jwtVerify(token, createRemoteJWKSet(new URL(sim.jwksUrl)), {
    issuer: sim.issuer,
    audience,
  });
  return payload;
}

describe('buildkite-agent oidc request-token (in-process)', () => {
  it('prints a verifiable JWT for the job in the env and redacts it through the Job API', async () => {
    const job = sim.createJob();
    const r = await run(requestToken('--audience', 'https://port.example'), sim.jobEnv(job));
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout.endsWith('\n')).toBe(true);
    const token = r.stdout.trim();
    const payload = await verified(token, 'https://port.example');
    expect(payload.job_id).toBe(job.jobId);
    expect(sim.redactions(job)).toEqual([token]);

    expect(r.requests).toHaveLength(1);
    const [req] = r.requests;
    expect(req?.url).toBe(`${sim.agentEndpoint}/jobs/${job.jobId}/oidc/tokens`);
    expect(req?.headers.get('authorization')).toBe(`Token ${job.jobToken}`);
    expect(req?.body).toEqual({ audience: 'https://port.example' });
  });

  it('passes every flag to the API (lists from repeated and comma flags)', async () => {
    const job = sim.createJob({ agentTags: { queue: 'default', os: 'linux' } });
    const r = await run(
      requestToken(
        '--audience=port',
        '--lifetime', '900',
        '--claim', 'organization_id',
        '--claim', 'pipeline_id, cluster_name,',
        '-claim=agent_tag:os',
        '--aws-session-tag', 'build_number,step_key',
        '--subject-claim', 'pipeline_id',
      ),
      sim.jobEnv(job),
    );
    expect(r.code).toBe(0);
    expect(r.requests[0]?.body).toEqual({
      audience: 'port',
      lifetime: 900,
      claims: ['organization_id', 'pipeline_id', 'cluster_name', 'agent_tag:os'],
      aws_session_tags: ['build_number', 'step_key'],
      subject_claim: 'pipeline_id',
    });
    const payload = await verified(r.stdout.trim(), 'port');
    expect(payload.sub).toBe(job.pipelineId);
    expect(payload.exp).toBe((payload.iat ?? 0) + 900);
    expect(payload['agent_tag:os']).toBe('linux');
  });

  it('takes claims, session tags and subject claim from the env, flags winning', async () => {
    const job = sim.createJob();
    const env = {
      ...sim.jobEnv(job),
      BUILDKITE_OIDC_TOKEN_CLAIMS: 'organization_id, queue_id',
      BUILDKITE_OIDC_TOKEN_AWS_SESSION_TAGS: 'pipeline_slug',
      BUILDKITE_OIDC_TOKEN_SUBJECT_CLAIM: 'job_id',
    };
    const r = await run(requestToken(), env);
    expect(r.code).toBe(0);
    expect(r.requests[0]?.body).toEqual({
      claims: ['organization_id', 'queue_id'],
      aws_session_tags: ['pipeline_slug'],
      subject_claim: 'job_id',
    });
    const payload = decodeJwt(r.stdout.trim());
    expect(payload.aud).toBe('https://buildkite.com/acme');
    expect(payload.sub).toBe(job.jobId);

    const r2 = await run(requestToken('--claim', 'build_id', '--subject-claim', 'agent_id'), env);
    expect(r2.requests[0]?.body).toMatchObject({ claims: ['build_id'], subject_claim: 'agent_id' });
  });

  it('prints the GCP executable-credential wrapper with --format gcp', async () => {
    const job = sim.createJob();
    const r = await run(requestToken('--format', 'gcp', '--audience', 'gcp'), sim.jobEnv(job));
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as Record<string, unknown>;
    expect(Object.keys(out)).toEqual(['id_token', 'token_type', 'version', 'success']);
    expect(out).toMatchObject({ token_type: 'urn:ietf:params:oauth:token-type:jwt', version: 1, success: true });
    expect(decodeJwt(String(out.id_token)).aud).toBe('gcp');
  });

  it('fails like the agent on a 422, without retrying', async () => {
    const job = sim.createJob();
    const r = await run(requestToken('--audience', 'port', '--lifetime', '14400'), sim.jobEnv(job));
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.requests).toHaveLength(1);
    expect(r.stderr).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ERROR {2}Could not obtain OIDC token for audience port\n/);
    expect(r.stderr).toContain(
      `fatal: POST ${sim.agentEndpoint}/jobs/${job.jobId}/oidc/tokens: 422 Unprocessable Entity: Requested lifetime too high (requested: 14400 max: 7200)\n`,
    );
  });

  it('cannot mint for another job', async () => {
    const mine = sim.createJob();
    const other = sim.createJob();
    const r = await run(requestToken('--job', other.jobId), sim.jobEnv(mine));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('Could not obtain OIDC token for default audience');
    expect(r.stderr).toContain(': 403 Forbidden');
    expect(r.requests).toHaveLength(1);
  });

  it('retries 5xx with exponential backoff, then succeeds or gives up after 5 attempts', async () => {
    const job = sim.createJob();
    sim.failTokenRequests(2, 502);
    const ok = await run(requestToken(), sim.jobEnv(job));
    expect(ok.code).toBe(0);
    expect(ok.requests).toHaveLength(3);
    expect(ok.sleeps).toEqual([2000, 4000]);
    expect(ok.stderr).toContain('WARN');
    expect(ok.stderr).toContain('502 Bad Gateway');

    sim.failTokenRequests(10, 500);
    const bad = await run(requestToken(), { ...sim.jobEnv(job), [BACKOFF_SCALE_ENV]: '0' });
    expect(bad.code).toBe(1);
    expect(bad.requests).toHaveLength(5);
    expect(bad.sleeps).toEqual([0, 0, 0, 0]);
    expect(bad.stderr).toContain('fatal: POST');
    sim.failTokenRequests(0);
  });

  it('refuses to print an unredacted token without the Job API unless --skip-redaction', async () => {
    const job = sim.createJob();
    const env: Record<string, string | undefined> = { ...sim.jobEnv(job) };
    delete env.BUILDKITE_AGENT_JOB_API_SOCKET;
    const r = await run(requestToken(), env);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe('fatal: failed to create Job API client: BUILDKITE_AGENT_JOB_API_SOCKET empty or undefined\n');

    const skipped = await run(requestToken('--skip-redaction'), env);
    expect(skipped.code).toBe(0);
    expect(decodeJwt(skipped.stdout.trim()).job_id).toBe(job.jobId);

    const viaEnv = await run(requestToken(), { ...env, BUILDKITE_AGENT_OIDC_REQUEST_TOKEN_SKIP_TOKEN_REDACTION: 'true' });
    expect(viaEnv.code).toBe(0);

    const wrongToken = await run(requestToken(), { ...sim.jobEnv(job), BUILDKITE_AGENT_JOB_API_TOKEN: 'nope' });
    expect(wrongToken.code).toBe(1);
    expect(wrongToken.stderr).toBe('fatal: failed to redact OIDC token\n');
    expect(sim.redactions(job)).toEqual([]);
  });

  it('validates its own flags before calling the API', async () => {
    const job = sim.createJob();
    const env = sim.jobEnv(job);
    const neg = await run(requestToken('--lifetime', '-5'), env);
    expect(neg.stderr).toBe('fatal: lifetime -5 must be a non-negative integer.\n');
    const fmt = await run(requestToken('--format', 'pem'), env);
    expect(fmt.stderr).toBe(`fatal: format "pem" is not valid. Supported values are 'jwt' and 'gcp'\n`);
    const noJob = await run(requestToken(), { ...env, BUILDKITE_JOB_ID: undefined });
    expect(noJob.stderr).toContain('fatal: Missing job.');
    const noToken = await run(requestToken(), { ...env, BUILDKITE_AGENT_ACCESS_TOKEN: '' });
    expect(noToken.stderr).toContain('fatal: Missing agent-access-token.');
    const unknown = await run(requestToken('--audiences', 'x'), env);
    expect(unknown.stderr).toContain('Incorrect Usage: flag provided but not defined: -audiences');
    const notInt = await run(requestToken('--lifetime', 'soon'), env);
    expect(notInt.stderr).toContain('invalid value "soon" for flag -lifetime');
    for (const r of [neg, fmt, noJob, noToken, unknown, notInt]) {
      expect(r.code).toBe(1);
      expect(r.requests).toHaveLength(0);
    }
  });

  it('defaults the endpoint to https://agent.buildkite.com/v3 and omits empty body keys', async () => {
    let seen: { url: string; body: string } | undefined;
    const fake: typeof fetch = async (input, init) => {
      seen = { url: String(input), body: String(init?.body) };
      return new Response(JSON.stringify({ token: 'a.b.c' }), { status: 201 });
    };
    const r = await run(requestToken('--skip-redaction', '--job', 'job.1'), { BUILDKITE_AGENT_ACCESS_TOKEN: 't' }, { fetch: fake });
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('a.b.c\n');
    expect(seen).toEqual({ url: 'https://agent.buildkite.com/v3/jobs/job%2E1/oidc/tokens', body: '{}' });
  });
});

describe('buildkite-agent redactor add (in-process)', () => {
  it('redacts stdin or every value of a JSON object', async () => {
    const job = sim.createJob();
    const r = await run(['redactor', 'add'], sim.jobEnv(job), { readStdin: async () => '  port-token-123\n' });
    expect(r.code).toBe(0);
    const dir = mkdtempSync(join(tmpdir(), 'redact-'));
    try {
      const file = join(dir, 'secrets.json');
      writeFileSync(file, JSON.stringify({ a: 's1', b: 's2' }));
      const j = await run(['redactor', 'add', '--format', 'json', file], sim.jobEnv(job));
      expect(j.code).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    expect(sim.redactions(job)).toEqual(['port-token-123', 's1', 's2']);
  });
});

describe('buildkite-agent shim (end to end)', () => {
  let binDir: string;
  let shim: string;

  beforeAll(() => {
    ensureDist();
    binDir = mkdtempSync(join(tmpdir(), 'bkagent-bin-'));
    shim = writeBuildkiteAgentShim(binDir);
  });
  afterAll(() => {
    rmSync(binDir, { recursive: true, force: true });
  });

  const sh = (script: string, env: Record<string, string>) =>
    promisify(execFile)('/bin/sh', ['-c', script], {
      env: { PATH: `${binDir}:${process.env.PATH ?? ''}`, ...env },
    });

  it('is an executable /bin/sh script', () => {
    expect(shim).toBe(join(binDir, 'buildkite-agent'));
    expect(statSync(shim).mode & 0o111).toBe(0o111);
    expect(readFileSync(shim, 'utf8')).toMatch(/^#!\/bin\/sh\n/);
  });

  it('works from a hook the way the real agent does', async () => {
    const job: SimJob = sim.createJob({ stepKey: 'deploy' });
    const { stdout, stderr } = await sh(
      'TOKEN="$(buildkite-agent oidc request-token --audience port --claim organization_id)" && printf %s "$TOKEN"',
      sim.jobEnv(job),
    );
    expect(stderr).toBe('');
    const payload = await verified(stdout, 'port');
    expect(payload).toMatchObject({ job_id: job.jobId, step_key: 'deploy', organization_id: sim.organizationId });
    expect(sim.redactions(job)).toEqual([stdout]);
  });

  it('exits non-zero with the API error on stderr', async () => {
    const job = sim.createJob();
    const err = await sh('buildkite-agent oidc request-token --lifetime 9000', sim.jobEnv(job)).then(
      () => undefined,
      (e: { code: number; stdout: string; stderr: string }) => e,
    );
    expect(err?.code).toBe(1);
    expect(err?.stdout).toBe('');
    expect(err?.stderr).toContain('422 Unprocessable Entity: Requested lifetime too high (requested: 9000 max: 7200)');
  });

  it('prints its version', async () => {
    const { stdout } = await sh('buildkite-agent --version', {});
    expect(stdout).toMatch(/^buildkite-agent version 3\.\d+\.\d+/);
  });
});
