/**
 * End to end: a job refused by default learns which permits were
 * written for what it asked and did not match, with their @reasons — in the HTTP
 * error_description at /oauth/token and /v1/credentials, on the CLI's stderr (`port token
 * exchange`, `port creds`, run inside a simulated job with the simulator's
 * buildkite-agent), in the relay's 403, and in the decision log (reason, and
 * `context.unmatched_permits`).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeBuildkiteAgentShim } from '../../src/sim/index.js';
import { startHarness, TEST_POLICIES, type Harness } from '../helpers/port-harness.js';
import { RELAY_POLICIES, startRelayHarness, type RelayHarness } from '../helpers/relay-harness.js';
import { runPort } from '../helpers/spawn-port.js';

const POLICIES: Record<string, string> = {
  'exchange.cedar': TEST_POLICIES['exchange.cedar']!,
  'deploy.cedar': `
@id("deploy-main")
@reason("only main may deploy")
permit (principal, action == Port::Action::"assume", resource == Port::Credential::"deploy-token")
when { principal.pipeline_slug == "deploy" && principal.branch == "main" };

@id("deploy-hotfix")
@reason("hotfix branches deploy with a tag")
permit (principal, action == Port::Action::"assume", resource == Port::Credential::"deploy-token")
when { principal.branch like "hotfix/*" && principal.tag != "" };
`,
  // Five permits for npm-publish: a refusal names three and counts the rest.
  'npm.cedar': [1, 2, 3, 4, 5]
    .map((i) => `@id("npm-${i}")\n@reason("npm rule ${i}")\npermit (principal, action == Port::Action::"assume", resource == Port::Credential::"npm-publish") when { principal.pipeline_slug == "npm-${i}" };\n`)
    .join('\n'),
};

const DEPLOY_REFUSAL =
  'denied by default: no policy permits assume; not matched: deploy-main ("only main may deploy"), deploy-hotfix ("hotfix branches deploy with a tag")';

let h: Harness;
let shimDir: string;
beforeAll(async () => {
  h = await startHarness({ policies: POLICIES });
  shimDir = mkdtempSync(join(tmpdir(), 'port-denial-agent-'));
  writeBuildkiteAgentShim(shimDir);
});
afterAll(async () => {
  await h?.close();
  if (shimDir) rmSync(shimDir, { recursive: true, force: true });
});

async function lastRecord() {
  return (await h.port.store.decisions.last())!.record;
}

/** A job step's environment: the simulator's buildkite-agent first on PATH, nothing leaking in from the runner. */
function jobEnv(job: ReturnType<Harness['sim']['createJob']>): Record<string, string> {
  return { ...h.sim.jobEnv(job), PATH: `${shimDir}${delimiter}${process.env.PATH}`, PORT_URL: h.url, PORT_AUDIENCE: h.audience, PORT_TOKEN: '', PORT_SCOPE: '' };
}

describe('a refused exchange names the permits that did not match', () => {
  it('reaches the HTTP error_description and the decision log', async () => {
    const job = h.sim.createJob({ pipelineSlug: 'deploy', branch: 'feature/login' });
    const res = await h.exchange(await h.sim.mintToken(job, { audience: h.audience }), { scope: 'deploy-token' });
    expect(res.status).toBe(403);
    expect(res.body).toEqual({ error: 'access_denied', error_description: `Policy denied the grant "deploy-token": ${DEPLOY_REFUSAL}` });
    // Permits for the other credential and for exchange are not named.
    expect(res.body.error_description).not.toMatch(/npm-|acme-jobs-exchange/);

    const record = await lastRecord();
    expect(record).toMatchObject({
      action: 'assume',
      resource: 'Port::Credential::"deploy-token"',
      decision: 'deny',
      policies: [],
      reason: DEPLOY_REFUSAL,
      context: {
        unmatched_permits: [
          { id: 'deploy-main', reason: 'only main may deploy' },
          { id: 'deploy-hotfix', reason: 'hotfix branches deploy with a tag' },
        ],
      },
    });
  });

  it('names three and counts the rest', async () => {
    const job = h.sim.createJob({ pipelineSlug: 'web', branch: 'main' });
    const res = await h.exchange(await h.sim.mintToken(job, { audience: h.audience }), { scope: 'npm-publish' });
    expect(res.status).toBe(403);
    expect(res.body.error_description).toBe(
      'Policy denied the grant "npm-publish": denied by default: no policy permits assume; not matched: npm-1 ("npm rule 1"), npm-2 ("npm rule 2"), npm-3 ("npm rule 3"), and 2 more',
    );
    const record = await lastRecord();
    expect((record.context as { unmatched_permits: { id: string }[] }).unmatched_permits.map((p) => p.id)).toEqual(['npm-1', 'npm-2', 'npm-3', 'npm-4', 'npm-5']);
  });

  it('reaches `port token exchange` on stderr, inside a job', async () => {
    const job = h.sim.createJob({ pipelineSlug: 'deploy', branch: 'feature/login' });
    const r = await runPort(['token', 'exchange', '--scope', 'deploy-token'], { env: jobEnv(job) });
    expect(r).toMatchObject({ code: 1, stdout: '' });
    expect(r.stderr).toBe(`port: token exchange refused (403 access_denied): Policy denied the grant "deploy-token": ${DEPLOY_REFUSAL}\n`);
  });
});

describe('a refused credential release names the permits that did not match', () => {
  it('at POST /v1/credentials with a Buildkite bearer, and in the decision log', async () => {
    const job = h.sim.createJob({ pipelineSlug: 'deploy', branch: 'feature/login' });
    const bk = await h.sim.mintToken(job, { audience: h.audience });
    const res = await fetch(`${h.url}/v1/credentials/deploy-token`, { method: 'POST', headers: { authorization: `Bearer ${bk}` } });
    expect(res.status).toBe(403);
    expect(await res.json()).toEqual({ error: 'access_denied', error_description: `Policy denied the credential "deploy-token": ${DEPLOY_REFUSAL}` });
    expect(await lastRecord()).toMatchObject({
      action: 'assume',
      decision: 'deny',
      reason: DEPLOY_REFUSAL,
      context: { bearer: 'buildkite_token', unmatched_permits: [{ id: 'deploy-main' }, { id: 'deploy-hotfix' }] },
    });
  });

  it('on `port creds` stderr, inside a job', async () => {
    const job = h.sim.createJob({ pipelineSlug: 'deploy', branch: 'feature/login' });
    const r = await runPort(['creds', 'deploy-token'], { env: jobEnv(job) });
    expect(r).toMatchObject({ code: 1, stdout: '' });
    expect(r.stderr).toBe(`port: creds deploy-token: token exchange refused (403 access_denied): Policy denied the credential "deploy-token": ${DEPLOY_REFUSAL}\n`);
  });
});

describe("the relay's 403 names the permits that did not match", () => {
  let r: RelayHarness;
  beforeAll(async () => {
    r = await startRelayHarness({ policies: RELAY_POLICIES });
  });
  afterAll(async () => {
    await r?.close();
  });

  it('for a write the upload permit does not cover', async () => {
    const token = await r.token({ pipelineSlug: 'web' });
    const res = await fetch(r.relayUrl('/files/uploads/a.txt'), { method: 'PUT', headers: { authorization: `Bearer ${token}` }, body: 'x' });
    expect(res.status).toBe(403);
    const reason =
      'denied by default: no policy permits proxy; not matched: files-read ("acme jobs may read the file store"), files-upload ("deploy jobs may upload under /uploads")';
    expect(await res.json()).toEqual({ error: 'access_denied', error_description: `Policy denied PUT /uploads/a.txt on files: ${reason}` });
    expect((await r.port.store.decisions.last())!.record).toMatchObject({ action: 'proxy', decision: 'deny', reason });
    expect(r.upstream.requests).toHaveLength(0);
  });
});
