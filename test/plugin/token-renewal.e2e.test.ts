/**
 * Renewal of the job's Port token (plugin/lib/token.bash) end to end, against a Port whose
 * tokens live 10 s (`issuer.token_ttl`), so a "long job" takes seconds: the real hooks
 * sourced as the agent does (agent-job.ts), the simulator's `buildkite-agent` on PATH, and
 * the AWS SDK for JavaScript running the profile's `credential_process` from inside the
 * step (fixtures/aws-sdk-credentials.mjs). Waits are real (until a token's `exp` has
 * passed); nothing is asserted on speed.
 */
import { execFile } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StsSimulator } from '../../src/sim/aws-sts/index.js';
import { writeBuildkiteAgentShim, type SimJob } from '../../src/sim/index.js';
import { startHarness, type Harness } from '../helpers/port-harness.js';
import { ensureDist } from '../sim/ensure-dist.js';
import { AgentJob, type PhaseResult } from './agent-job.js';
import { pluginEnvironment } from './plugin-env.js';

const execFileP = promisify(execFile);
const PLUGIN_DIR = resolve(import.meta.dirname, '..', '..', 'plugin');
const TOOL = join(PLUGIN_DIR, 'bin', 'port-credential-process');
const SDK_PROGRAM = join(import.meta.dirname, 'fixtures', 'aws-sdk-credentials.mjs');
// Short enough that tests wait seconds, long enough that one renewal (under 2 s for four
// concurrent SDK runs on an idle machine, several times that on a loaded one) ends well
// before the renewed token is itself due for renewal (a quarter of its lifetime before
// `exp`), which the "renew once" test relies on. The waits of different tests overlap
// (the suites run concurrently), so a longer lifetime costs little.
const TOKEN_TTL_SECONDS = 10;
// Each test waits for one or two tokens to expire and runs a dozen processes; on a busy
// machine that can pass the suite's default timeout. A limit, not a measurement.
const TEST_TIMEOUT_MS = 90_000;
const AWS_USER = { name: 'port', accessKeyId: 'AKIARENEWALSIMULATOR', secretAccessKey: 'renewal-sim-secret-Qm4Zt8Lw2Rx6Vb1Nc9Kd3' };

const POLICIES: Record<string, string> = {
  'exchange.cedar': `
@id("acme-jobs-exchange")
permit (principal, action == Port::Action::"exchange", resource == Port::Organization::"acme");
`,
  'credentials.cedar': `
@id("deploy-credentials")
permit (principal, action == Port::Action::"assume", resource)
when { principal.pipeline_slug == "deploy" };
`,
};

let h: Harness;
let sts: StsSimulator;
let dir: string;
let shimDir: string;
/** Everything in /usr/bin but flock(1): an agent without util-linux (e.g. macOS). */
let noFlockDir: string;
let portIssuer: string;

beforeAll(async () => {
  ensureDist();
  dir = mkdtempSync(join(tmpdir(), 'port-plugin-renewal-'));
  shimDir = join(dir, 'bin');
  writeBuildkiteAgentShim(shimDir);
  noFlockDir = join(dir, 'no-flock-bin');
  mkdirSync(noFlockDir);
  for (const name of readdirSync('/usr/bin')) if (name !== 'flock') symlinkSync(join('/usr/bin', name), join(noFlockDir, name));
  sts = await StsSimulator.start({ users: [AWS_USER], roles: [{ name: 'deploy', maxSessionDuration: 3600, trust: { users: ['port'] } }] });
  process.env.PORT_RENEWAL_TEST_AWS_KEY_ID = AWS_USER.accessKeyId;
  process.env.PORT_RENEWAL_TEST_AWS_SECRET = AWS_USER.secretAccessKey;
  h = await startHarness({
    policies: POLICIES,
    config: {
      issuer: { token_ttl: `${TOKEN_TTL_SECONDS}s` },
      credentials: {
        'aws-prod': {
          type: 'aws_role',
          mode: 'assume_role',
          role_arn: sts.roleArn('deploy'),
          sts_endpoint: sts.url,
          region: 'eu-west-1',
          duration: '15m',
          access_key_id: 'env:PORT_RENEWAL_TEST_AWS_KEY_ID',
          secret_access_key: 'env:PORT_RENEWAL_TEST_AWS_SECRET',
        },
        'db-password': { type: 'secret', value: 'command:printf %s renewal-db-secret-Hq8' },
      },
    },
  });
});

afterAll(async () => {
  await h?.close();
  await sts?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

interface Job {
  sim: SimJob;
  agent: AgentJob;
  tmp: string;
  out: string;
  /** The job's environment before any hook ran (what a process of the job inherits). */
  baseEnv: Record<string, string>;
}

function newJob(opts: { flock?: boolean } = {}): Job {
  const sim = h.sim.createJob({ pipelineSlug: 'deploy', branch: 'main' });
  const tmp = mkdtempSync(join(dir, 'tmp-'));
  const out = join(tmp, 'out');
  mkdirSync(out);
  const baseEnv = {
    PATH: opts.flock === false ? `${shimDir}:${noFlockDir}` : `${shimDir}:${process.env.PATH ?? '/usr/bin:/bin'}`,
    HOME: tmp,
    TMPDIR: tmp,
    OUT: out,
    NODE: process.execPath,
    SDK_PROGRAM,
    AWS_SHARED_CREDENTIALS_FILE: join(tmp, 'no-credentials-file'),
    ...h.sim.jobEnv(sim),
  };
  const config = { url: h.url, audience: h.audience, 'aws-profile': 'aws-prod', scopes: ['db-password'] };
  return { sim, agent: new AgentJob(baseEnv, PLUGIN_DIR, pluginEnvironment('acme/port#v1.0.0', config)), tmp, out, baseEnv };
}

function tokenFile(job: Job): string {
  return join(job.agent.env.PORT_PLUGIN_STATE_DIR!, 'port-token');
}

/** Waits (really) until the token's `exp` has passed by a second: Port refuses it from then on. */
async function waitForExpiry(token: string): Promise<void> {
  const ms = decodeJwt(token).exp! * 1000 + 1000 - Date.now();
  if (ms > 0) await new Promise((r) => setTimeout(r, ms));
}

/** The Port tokens (not Buildkite's) registered with the job's log redactor. */
function redactedPortTokens(job: Job): string[] {
  return h.sim.redactions(job.sim).filter((v) => {
    try {
      return decodeJwt(v).iss === portIssuer;
    } catch {
      return false;
    }
  });
}

async function credential(name: string, token: string): Promise<{ status: number; body: any }> {
  const res = await fetch(`${h.url}/v1/credentials/${name}`, { method: 'POST', headers: { authorization: `Bearer ${token}` } });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

/** Runs the AWS SDK program in the step; its JSON line. */
async function sdkInStep(job: Job, outName = 'sdk.json'): Promise<{ cmd: PhaseResult; result: any }> {
  const cmd = await job.agent.command(`"$NODE" "$SDK_PROGRAM" > "$OUT/${outName}"`);
  return { cmd, result: JSON.parse(readFileSync(join(job.out, outName), 'utf8')) };
}

async function runTool(args: string[], env: Record<string, string>) {
  try {
    const r = await execFileP(TOOL, args, { env });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

/** A private copy of the job's token file, audience and Port URL, as a process that kept them would hold. */
function keepTokenFiles(job: Job, files = ['port-token', 'audience', 'url']): string {
  const keep = mkdtempSync(join(job.tmp, 'kept-'));
  for (const f of files) {
    copyFileSync(join(job.agent.env.PORT_PLUGIN_STATE_DIR!, f), join(keep, f));
    chmodSync(join(keep, f), 0o600);
  }
  return keep;
}

// The suites below run concurrently (each test has its own job, and the waits for a token to
// expire overlap); the concurrent-renewal suite at the end runs on its own, so its four
// parallel AWS SDK runs share the machine with nothing else of this file.
describe.concurrent('a Port token that expires during the job', { timeout: TEST_TIMEOUT_MS }, () => {
  it('is renewed by credential_process: the AWS SDK keeps getting credentials, and the token file is replaced', async () => {
    const job = newJob();
    const env = await job.agent.hook('environment');
    expect(env.code).toBe(0);
    const file = tokenFile(job);
    const stateDir = job.agent.env.PORT_PLUGIN_STATE_DIR!;
    expect(readFileSync(join(stateDir, 'audience'), 'utf8')).toBe(h.audience);
    const first = readFileSync(file, 'utf8');
    portIssuer = decodeJwt(first).iss!;

    await waitForExpiry(first);
    // Port itself refuses the first token now (it expired; it was not revoked).
    const refused = await credential('aws-prod', first);
    expect(refused.status).toBe(401);
    expect(refused.body.error).toBe('invalid_token');
    expect(refused.body.error_description).not.toMatch(/revoked/i);

    const { cmd, result } = await sdkInStep(job);
    expect(result.error).toBeUndefined();
    expect(cmd.code).toBe(0);
    expect(result.accessKeyId).toMatch(/^ASIA/);
    expect(sts.sessions.get(result.accessKeyId)?.roleArn).toBe(sts.roleArn('deploy'));

    // A new token for the same job and the same grants, in a fresh 0600 file.
    const second = readFileSync(file, 'utf8');
    expect(second).not.toBe(first);
    const [c1, c2] = [decodeJwt(first), decodeJwt(second)];
    expect(c2.sub).toBe(job.sim.jobId);
    expect(c2.jti).not.toBe(c1.jti);
    expect(String(c2.scope).split(' ').sort()).toEqual(String(c1.scope).split(' ').sort());
    expect(String(c2.scope).split(' ').sort()).toEqual(['aws-prod', 'db-password']);
    expect(c2.exp!).toBeGreaterThan(c1.exp!);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    // Registered with the log redactor; no temporary file left behind.
    expect(redactedPortTokens(job)).toEqual(expect.arrayContaining([first, second]));
    expect(readdirSync(stateDir).filter((n) => n.startsWith('.port-token.'))).toEqual([]);
    // The renewed token holds its grants at Port while it lives. Tokens here live 10 s, and on a
    // loaded machine the step that renewed it may have used them up: then Port must refuse it
    // as an invalid (expired) token, never for another reason.
    const askedAt = Date.now() / 1000;
    const held = await credential('db-password', second);
    if (askedAt + 2 < c2.exp!) expect(held.status).toBe(200);
    else if (held.status !== 200) expect([held.status, held.body.error]).toEqual([401, 'invalid_token']);

    // And again once the renewed one expires: a job longer than any single token.
    await waitForExpiry(second);
    const again = await sdkInStep(job, 'sdk-again.json');
    expect(again.result.error).toBeUndefined();
    expect(again.result.accessKeyId).toMatch(/^ASIA/);
    const third = readFileSync(file, 'utf8');
    expect(new Set([first, second, third]).size).toBe(3);

    // No token reached the step's output or the hook's log.
    const log = env.stdout + env.stderr + cmd.stdout + cmd.stderr + again.cmd.stdout + again.cmd.stderr;
    for (const token of [first, second, third]) expect(log).not.toContain(token);

    expect((await job.agent.hook('pre-exit')).code).toBe(0);
    job.agent.close();
  });

  it('pre-exit renews an expired token to revoke the job; afterwards renewal is refused with Port’s reason', async () => {
    const job = newJob();
    expect((await job.agent.hook('environment')).code).toBe(0);
    const first = readFileSync(tokenFile(job), 'utf8');
    portIssuer = decodeJwt(first).iss!;
    const kept = keepTokenFiles(job);
    await waitForExpiry(first);

    const pre = await job.agent.hook('pre-exit');
    expect(pre.code).toBe(0);
    expect(pre.stderr).toContain("Port: revoked this job's Port tokens");
    // The token pre-exit renewed to revoke with is refused now, as revoked.
    const last = redactedPortTokens(job).at(-1)!;
    expect(last).not.toBe(first);
    const refused = await credential('aws-prod', last);
    expect(refused.status).toBe(401);
    expect(refused.body.error_description).toMatch(/revoked/i);

    // A process of the job that kept the token file (expired by now) cannot renew it:
    // Port refuses the exchange for a revoked job, and the tool says so.
    const keptFile = join(kept, 'port-token');
    const before = readFileSync(keptFile, 'utf8');
    const r = await runTool(['--format', 'aws', '--url', h.url, '--token-file', keptFile, 'aws-prod'], job.baseEnv);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('token exchange refused by Port (HTTP 400 invalid_grant: The job this token belongs to has finished or was revoked');
    expect(r.stderr).toContain(`the Port token in ${keptFile} expired or is about to`);
    expect(r.stderr).toContain('could not be renewed');
    expect(readFileSync(keptFile, 'utf8')).toBe(before);
    for (const token of h.sim.redactions(job.sim)) expect(r.stderr).not.toContain(token);
    job.agent.close();
  });

  it('the AWS SDK gets Port’s reason when the job was revoked while its step ran: renewal is refused', async () => {
    const job = newJob();
    expect((await job.agent.hook('environment')).code).toBe(0);
    const first = readFileSync(tokenFile(job), 'utf8');
    portIssuer = decodeJwt(first).iss!;
    await waitForExpiry(first);
    // An expired token may not even revoke its own job (hence pre-exit renews first)…
    const res = await fetch(`${h.url}/v1/revocations`, {
      method: 'POST',
      headers: { authorization: `Bearer ${first}`, 'content-type': 'application/json' },
      body: JSON.stringify({ scope: 'job', id: job.sim.jobId, reason: 'operator' }),
    });
    expect(res.status).toBe(401);
    // …so the job is revoked with a fresh token, as an operator or job.finished would, while its step runs.
    const fresh = await h.exchange(await h.sim.mintToken(job.sim, { audience: h.audience }));
    const revoke = await fetch(`${h.url}/v1/revocations`, {
      method: 'POST',
      headers: { authorization: `Bearer ${fresh.body.access_token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ scope: 'job', id: job.sim.jobId, reason: 'operator' }),
    });
    expect(revoke.status).toBe(200);

    const { cmd, result } = await sdkInStep(job);
    expect(cmd.code).not.toBe(0);
    expect(result.error).toContain('The job this token belongs to has finished or was revoked');
    expect(readFileSync(tokenFile(job), 'utf8')).toBe(first);
    job.agent.close();
  });
});

describe.concurrent('renewal happens only inside the token’s own job', { timeout: TEST_TIMEOUT_MS }, () => {
  it('outside a Buildkite job an expired token file is not renewed: Port’s refusal and the reason', async () => {
    const job = newJob();
    expect((await job.agent.hook('environment')).code).toBe(0);
    const file = tokenFile(job);
    const first = readFileSync(file, 'utf8');
    await waitForExpiry(first);
    const redactionsBefore = h.sim.redactions(job.sim).length;
    const r = await runTool(['--format', 'aws', '--url', h.url, '--token-file', file, 'aws-prod'], { PATH: job.baseEnv.PATH! });
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('credential "aws-prod" refused by Port (HTTP 401 invalid_token: ');
    expect(r.stderr).toContain('cannot be renewed here: not inside a Buildkite job');
    expect(readFileSync(file, 'utf8')).toBe(first);
    expect(h.sim.redactions(job.sim)).toHaveLength(redactionsBefore); // no Buildkite token requested
    expect((await job.agent.hook('pre-exit')).code).toBe(0);
    job.agent.close();
  });

  it('another job cannot renew a token file it took from this one', async () => {
    const victim = newJob();
    expect((await victim.agent.hook('environment')).code).toBe(0);
    const kept = keepTokenFiles(victim);
    const keptFile = join(kept, 'port-token');
    const stolen = readFileSync(keptFile, 'utf8');
    await waitForExpiry(stolen);
    const thief = newJob();
    const r = await runTool(['--format', 'aws', '--url', h.url, '--token-file', keptFile, 'aws-prod'], thief.baseEnv);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('cannot be renewed here: the token belongs to another job');
    expect(readFileSync(keptFile, 'utf8')).toBe(stolen);
    expect(h.sim.redactions(thief.sim)).toEqual([]); // the thief's job requested no Buildkite token
    expect((await victim.agent.hook('pre-exit')).code).toBe(0);
    victim.agent.close();
    thief.agent.close();
  });
});

/** Another server a job's environment might point at (a staging Port): records every request it gets. */
async function startOtherPort(): Promise<{ url: string; requests: string[]; close: () => Promise<void> }> {
  const requests: string[] = [];
  const server: Server = createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    req.resume();
    res.writeHead(500, { 'content-type': 'application/json' }).end('{"error":"server_error"}');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  // `localhost`, not 127.0.0.1: the same server, but not the URL string the token was issued at.
  const url = `http://localhost:${(server.address() as AddressInfo).port}`;
  return { url, requests, close: () => new Promise<void>((r) => server.close(() => r())) };
}

describe.concurrent('the job’s tokens go only to the Port that issued them', { timeout: TEST_TIMEOUT_MS }, () => {
  let other: Awaited<ReturnType<typeof startOtherPort>>;
  beforeAll(async () => {
    other = await startOtherPort();
  });
  afterAll(async () => {
    await other?.close();
  });

  it('another --url or PORT_URL is refused before anything is sent: no Port token, no Buildkite token, fresh or expiring', async () => {
    const job = newJob();
    expect((await job.agent.hook('environment')).code).toBe(0);
    const file = tokenFile(job);
    const first = readFileSync(file, 'utf8');
    const redactionsBefore = h.sim.redactions(job.sim).length;
    const refusal = `the token in ${file} was issued by the Port at ${h.url}, but --url or PORT_URL says ${other.url}; refusing to send it elsewhere`;

    // A fresh token: the Port token itself is a bearer credential at Port; it is not sent either.
    const fresh = await runTool(['--format', 'aws', '--url', other.url, '--token-file', file, 'aws-prod'], job.baseEnv);
    expect(fresh).toMatchObject({ code: 1, stdout: '' });
    expect(fresh.stderr).toContain(refusal);

    await waitForExpiry(first);
    for (const [args, env] of [
      [['--url', other.url], job.baseEnv],
      [[], { ...job.baseEnv, PORT_URL: other.url }],
      [['--url', `${other.url}/`], job.baseEnv],
    ] as const) {
      const r = await runTool(['--format', 'aws', ...args, '--token-file', file, 'aws-prod'], env);
      expect(r).toMatchObject({ code: 1, stdout: '' });
      expect(r.stderr).toContain(refusal);
    }
    expect(other.requests).toEqual([]);
    expect(h.sim.redactions(job.sim)).toHaveLength(redactionsBefore); // no Buildkite token was requested
    expect(readFileSync(file, 'utf8')).toBe(first);
    expect((await job.agent.hook('pre-exit')).code).toBe(0);
    job.agent.close();
  });

  it('without --url and PORT_URL the pinned URL is used: an expired token file is renewed at the Port that issued it', async () => {
    const job = newJob();
    expect((await job.agent.hook('environment')).code).toBe(0);
    const file = tokenFile(job);
    const first = readFileSync(file, 'utf8');
    await waitForExpiry(first);
    const r = await runTool(['--format', 'aws', '--token-file', file, 'aws-prod'], job.baseEnv);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ Version: 1, AccessKeyId: expect.stringMatching(/^ASIA/) });
    const second = readFileSync(file, 'utf8');
    expect(second).not.toBe(first);
    expect(decodeJwt(second).sub).toBe(job.sim.jobId);
    expect((await job.agent.hook('pre-exit')).code).toBe(0);
    job.agent.close();
  });

  it('the renewal itself refuses another URL (the guard pre-exit relies on too), and a token file without its url is not renewed', async () => {
    const job = newJob();
    expect((await job.agent.hook('environment')).code).toBe(0);
    const file = tokenFile(job);
    const first = readFileSync(file, 'utf8');
    const noUrl = join(keepTokenFiles(job, ['port-token', 'audience']), 'port-token');
    await waitForExpiry(first);
    const redactionsBefore = h.sim.redactions(job.sim).length;

    const lib = join(PLUGIN_DIR, 'lib');
    let renew: { code: number; stdout: string; stderr: string };
    try {
      const r = await execFileP('bash', ['-c', `set -euo pipefail; . "${lib}/port.bash"; . "${lib}/token.bash"; port_renew_token_file "$1" "$2" "$3"`, 'renew', other.url, file, first], {
        env: job.baseEnv,
      });
      renew = { code: 0, stdout: r.stdout, stderr: r.stderr };
    } catch (err) {
      renew = err as { code: number; stdout: string; stderr: string };
    }
    expect(renew.code).toBe(1);
    expect(renew.stderr).toContain(`refusing to renew the token in ${file} at ${other.url}: it was issued by the Port at ${h.url}`);

    const r = await runTool(['--format', 'aws', '--url', h.url, '--token-file', noUrl, 'aws-prod'], job.baseEnv);
    expect(r).toMatchObject({ code: 1, stdout: '' });
    expect(r.stderr).toContain('cannot be renewed here: there is no url file next to the token file');

    expect(other.requests).toEqual([]);
    expect(h.sim.redactions(job.sim)).toHaveLength(redactionsBefore);
    expect(readFileSync(file, 'utf8')).toBe(first);
    expect((await job.agent.hook('pre-exit')).code).toBe(0);
    job.agent.close();
  });
});

describe('several credential_process runs at once', { timeout: TEST_TIMEOUT_MS }, () => {
  it.each([
    ['flock(1)', true],
    ['a mkdir lock (no flock on the agent)', false],
  ])('concurrent credential_process runs renew it once, under %s', async (_name, flock) => {
    const job = newJob({ flock });
    expect((await job.agent.hook('environment')).code).toBe(0);
    const stateDir = job.agent.env.PORT_PLUGIN_STATE_DIR!;
    const first = readFileSync(tokenFile(job), 'utf8');
    portIssuer = decodeJwt(first).iss!;
    const before = redactedPortTokens(job);
    await waitForExpiry(first);

    const cmd = await job.agent.command(
      'for i in 1 2 3 4; do "$NODE" "$SDK_PROGRAM" > "$OUT/sdk-$i.json" & done; wait',
    );
    expect(cmd.code).toBe(0);
    for (const i of [1, 2, 3, 4]) {
      const result = JSON.parse(readFileSync(join(job.out, `sdk-${i}.json`), 'utf8'));
      expect(result.error, `run ${i}`).toBeUndefined();
      expect(result.accessKeyId).toMatch(/^ASIA/);
    }
    // One exchange for four runs: the others waited for the lock and used its token.
    const renewed = redactedPortTokens(job).filter((t) => !before.includes(t));
    expect(renewed).toHaveLength(1);
    expect(readFileSync(tokenFile(job), 'utf8')).toBe(renewed[0]);
    expect(existsSync(join(stateDir, 'port-token.lock'))).toBe(flock);
    expect(readdirSync(stateDir).filter((n) => n.startsWith('.port-token.') || n.endsWith('.lock.d'))).toEqual([]);

    expect((await job.agent.hook('pre-exit')).code).toBe(0);
    job.agent.close();
  });
});
