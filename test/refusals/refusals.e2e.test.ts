import { rmSync } from 'node:fs';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DecisionEntry } from '../../src/store/records/decisions.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { decodePart, signWithForeignKey } from '../helpers/forge.js';
import { startHarness, type Harness } from '../helpers/port-harness.js';

/**
 * Driven over HTTP against a running Port: tokens that don't verify
 * are throttled per remote address (429 + Retry-After) and logged as the first of each
 * kind in full plus one count per (kind, action, address) per window, written at the
 * latest on close. Decisions about verified jobs are logged one by one, and a verified
 * job is never throttled. Before the fix, 1,000 bad tokens made 1,000 log entries.
 *
 * Sources are loopback addresses (Linux routes all of 127.0.0.0/8 to lo), bound as the
 * client's local address.
 */
const BURST = 40;
const FLOOD = 1000;
const EXCHANGE_FORM = {
  grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
  subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
};

let h: Harness;
let seqBefore = 0;
const agents = new Map<string, Agent>();
/** Status counts per source and endpoint, checked against the log at the end. */
const answered = new Map<string, { refused: number; throttled: number }>();

function agent(source: string): Agent {
  let a = agents.get(source);
  if (a === undefined) agents.set(source, (a = new Agent({ localAddress: source })));
  return a;
}

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: any;
}

async function send(source: string, method: 'POST' | 'GET', path: string, init: { body?: string; headers?: Record<string, string> } = {}): Promise<Answer> {
  const res = await request(`${h.url}${path}`, { method, dispatcher: agent(source), ...(init.body !== undefined ? { body: init.body } : {}), headers: init.headers ?? {} });
  const text = await res.body.text();
  return { status: res.statusCode, headers: res.headers, body: text ? JSON.parse(text) : undefined };
}

function exchange(source: string, subjectToken: string, extra: Record<string, string> = {}): Promise<Answer> {
  return send(source, 'POST', '/oauth/token', {
    body: new URLSearchParams({ ...EXCHANGE_FORM, subject_token: subjectToken, ...extra }).toString(),
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
  });
}

function tally(key: string, res: Answer, refusedStatus: number): void {
  const t = answered.get(key) ?? { refused: 0, throttled: 0 };
  if (res.status === refusedStatus) t.refused++;
  else if (res.status === 429) t.throttled++;
  else throw new Error(`unexpected ${res.status} ${JSON.stringify(res.body)}`);
  answered.set(key, t);
}

function expectThrottled(res: Answer): void {
  expect(res.status).toBe(429);
  expect(res.body.error).toBe('too_many_requests');
  expect(res.body.error_description).toMatch(/^Too many invalid tokens came from this address; retry after \d+ s with a valid token\.$/);
  expect(Number(res.headers['retry-after'])).toBeGreaterThanOrEqual(1);
}

/** Runs `fn` over 0..n-1, `width` at a time. */
async function pool(n: number, width: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < n) await fn(next++);
  }));
}

async function entriesSince(seq: number): Promise<DecisionEntry[]> {
  return h.port.store.decisions.read(seq, 100_000);
}

const isRefusal = (e: DecisionEntry) => e.record.principal === null && e.record.decision === 'deny';
const isAggregate = (e: DecisionEntry) => e.record.context.aggregated === true;

beforeAll(async () => {
  h = await startHarness({
    config: {
      server: { listen: '127.0.0.1:0', public_url: 'https://port.acme.test', log_level: 'silent', refusal_rate_limit: { burst: BURST, per_minute: 1 } },
      // The longest window: nothing is flushed by the clock while the test runs, only by close().
      audit: { checkpoint_every: 5, refusal_window: '1h' },
      // Caller authentication comes before anything reaches the upstream; nothing listens there.
      upstreams: { files: { url: 'http://127.0.0.1:9/base', connect_timeout: 1, timeout: 1 } },
    },
  });
  seqBefore = (await h.port.store.decisions.last())?.seq ?? 0;
}, 60_000);

afterAll(async () => {
  await h?.port.close().catch(() => undefined);
  await h?.sim.close();
  await Promise.all([...agents.values()].map((a) => a.close()));
  if (h) rmSync(h.dir, { recursive: true, force: true });
});

describe('unauthenticated refusals at a running Port', () => {
  it('1,000 garbage and forged subject tokens from one address make a bounded log; past the burst they get 429', async () => {
    const job = h.sim.createJob({ pipelineSlug: 'deploy', branch: 'main' });
    const real = await h.sim.mintToken(job, { audience: h.audience });
    const header = decodePart(real, 0);
    const claims = decodePart(real, 1);
    // Three kinds: not a JWT at all, a real kid signed by a key Buildkite never published, another audience.
    const forged = signWithForeignKey(header, claims);
    const otherAudience = await h.sim.mintToken(job, { audience: 'https://elsewhere.test' });
    const bad = (i: number) => (i % 3 === 0 ? `garbage-${i}.not-a.jwt` : i % 3 === 1 ? forged : otherAudience);

    await pool(FLOOD, 8, async (i) => {
      const res = await exchange('127.0.0.1', bad(i));
      tally('127.0.0.1 exchange', res, 400);
      if (res.status === 429) expectThrottled(res);
      else expect(res.body.error).toBe('invalid_grant');
    });

    const t = answered.get('127.0.0.1 exchange')!;
    expect(t.refused + t.throttled).toBe(FLOOD);
    // The burst, plus at most a few refilled at one a minute while the test runs.
    expect(t.refused).toBeGreaterThanOrEqual(BURST);
    expect(t.refused).toBeLessThan(BURST + 5);

    // Written so far: the first of each kind, in full; the rest are counts in memory.
    const logged = (await entriesSince(seqBefore)).filter(isRefusal);
    expect(logged.length).toBeLessThanOrEqual(3);
    expect(new Set(logged.map((e) => e.record.context.check))).toEqual(new Set(['malformed', 'bad_signature', 'wrong_audience']));
    for (const e of logged) {
      expect(e.record).toMatchObject({ action: 'exchange', principal: null, decision: 'deny', context: { remote_address: '127.0.0.1' } });
      expect(JSON.stringify(e.record)).not.toContain(forged);
    }
  });

  it('another address is unaffected, and a verified job from the throttled address is not throttled', async () => {
    const garbage = await exchange('127.0.0.2', 'garbage.from.elsewhere');
    expect(garbage.status).toBe(400);
    expect(garbage.body.error).toBe('invalid_grant');
    tally('127.0.0.2 exchange', garbage, 400);

    const still = await exchange('127.0.0.1', 'still.garbage.here');
    expectThrottled(still);
    tally('127.0.0.1 exchange', still, 400);

    const job = h.sim.createJob({ pipelineSlug: 'deploy', branch: 'main' });
    const ok = await exchange('127.0.0.1', await h.sim.mintToken(job, { audience: h.audience }), { scope: 'deploy-token' });
    expect(ok.status).toBe(200);
    expect(typeof ok.body.access_token).toBe('string');
  });

  it('denials about verified jobs are still logged one by one, from a throttled address too', async () => {
    // The address is over its limit for bad tokens right now…
    const junk = await exchange('127.0.0.1', 'junk.while.denied');
    expectThrottled(junk);
    tally('127.0.0.1 exchange', junk, 400);
    // …and each denial of a verified job is still answered and logged on its own.
    const before = (await h.port.store.decisions.last())!.seq;
    const jobs = Array.from({ length: 5 }, () => h.sim.createJob({ pipelineSlug: 'untrusted', branch: 'main' }));
    for (const job of jobs) {
      const res = await exchange('127.0.0.1', await h.sim.mintToken(job, { audience: h.audience }));
      expect(res.status).toBe(403);
      expect(res.body.error).toBe('access_denied');
    }
    const denials = (await entriesSince(before)).filter((e) => e.record.decision === 'deny');
    expect(denials.map((e) => e.record.principal)).toEqual(jobs.map((j) => `Port::Job::${JSON.stringify(j.jobId)}`));
    for (const d of denials) expect(d.record.policies.map((p) => p.id)).toEqual(['no-untrusted-pipeline']);
  });

  it('POST /v1/credentials: bearers that are no token count against the address, then 429 with Retry-After', async () => {
    for (let i = 0; i < BURST + 10; i++) {
      const res = await send('127.0.0.3', 'POST', '/v1/credentials/deploy-token', { headers: { authorization: `Bearer junk-bearer-${i}` } });
      tally('127.0.0.3 assume', res, 401);
      if (res.status === 429) expectThrottled(res);
      else expect(res.body.error).toBe('invalid_token');
    }
    const t = answered.get('127.0.0.3 assume')!;
    expect(t.refused).toBeGreaterThanOrEqual(BURST);
    expect(t.throttled).toBeGreaterThanOrEqual(1);
  });

  it("the relay: callers whose token doesn't verify are throttled per address", async () => {
    let throttled = 0;
    for (let i = 0; i < BURST + 10; i++) {
      const res = await send('127.0.0.4', 'GET', '/relay/files/readme.txt', { headers: { authorization: `Bearer not-a-port-token-${i}` } });
      if (res.status === 429) {
        expectThrottled(res);
        throttled++;
      } else {
        expect(res.status).toBe(401);
        expect(res.body.error).toBe('invalid_token');
      }
    }
    expect(throttled).toBeGreaterThanOrEqual(10);
    expect(throttled).toBeLessThanOrEqual(10 + 5);
    // A caller without a token is answered as before (it is asked for one, not counted).
    const none = await send('127.0.0.4', 'GET', '/relay/files/readme.txt');
    expect(none.status).toBe(401);
    expect(none.body.error).toBe('invalid_request');
  });

  it('introspection and revocation: a bearer that is no Port token counts against the address, then 429', async () => {
    const form = { body: new URLSearchParams({ token: 'whatever' }).toString(), headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: 'Bearer not.a.port-token' } };
    const statuses: number[] = [];
    for (let i = 0; i < BURST + 2; i++) {
      const res = await send('127.0.0.5', 'POST', '/oauth/introspect', form);
      statuses.push(res.status);
      if (res.status === 429) expectThrottled(res);
      else expect(res.body.error).toBe('invalid_client');
    }
    expect(statuses.filter((s) => s === 401).length).toBeGreaterThanOrEqual(BURST);
    expect(statuses.at(-1)).toBe(429);
    // The same address's limit covers every endpoint: revocation with a junk bearer is throttled too.
    const revoke = await send('127.0.0.5', 'POST', '/v1/revocations', {
      body: JSON.stringify({ scope: 'job', id: '01890000-0000-7000-8000-000000000000' }),
      headers: { 'content-type': 'application/json', authorization: 'Bearer not.a.port-token' },
    });
    expectThrottled(revoke);
    // From a fresh address it is the usual 401.
    const fresh = await send('127.0.0.6', 'POST', '/v1/revocations', {
      body: JSON.stringify({ scope: 'job', id: '01890000-0000-7000-8000-000000000000' }),
      headers: { 'content-type': 'application/json', authorization: 'Bearer not.a.port-token' },
    });
    expect(fresh).toMatchObject({ status: 401, body: { error: 'invalid_token' } });
  });

  it('on close the counts are flushed, and they add up to what was answered', async () => {
    const path = h.config.store.sqlite;
    await h.port.close();
    const store = SqliteStore.open(path, { create: false });
    try {
      const entries = await store.decisions.read(seqBefore, 100_000);
      const refusals = entries.filter(isRefusal);
      // Bounded: at most the first of each kind and one count per (kind, action, address) — not ~1,100 entries.
      expect(refusals.length).toBeLessThanOrEqual(12);
      for (const [key, t] of answered) {
        const [source, action] = key.split(' ');
        const mine = refusals.filter((e) => e.record.context.remote_address === source && e.record.action === action);
        const full = mine.filter((e) => !isAggregate(e));
        const aggregates = mine.filter(isAggregate);
        const counted = aggregates.reduce((n, e) => n + (e.record.context.refusals as number), 0);
        const throttled = aggregates.reduce((n, e) => n + (e.record.context.throttled as number), 0);
        expect({ key, refused: full.length + counted, throttled }).toEqual({ key, refused: t.refused, throttled: t.throttled });
        for (const a of aggregates) {
          expect(a.record.context).toMatchObject({ aggregated: true, window_start: expect.any(String), window_end: expect.any(String) });
          expect(Date.parse(a.record.context.window_start as string)).toBeLessThanOrEqual(Date.parse(a.record.context.window_end as string));
        }
      }
      // The chain still verifies as one: aggregates are ordinary entries.
      expect(entries.every((e, i) => i === 0 || e.prevHash === entries[i - 1]!.hash)).toBe(true);
    } finally {
      await store.close();
    }
  });
});
