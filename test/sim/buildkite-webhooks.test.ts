import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { BuildkiteSimulator, signatureHeader, webhookSignature, type SimBuild, type SimUser } from '../../src/sim/index.js';

const SECRET = 'whsec-0123456789abcdef';

interface Received {
  headers: IncomingHttpHeaders;
  raw: string;
}

let sim: BuildkiteSimulator;
let alice: SimUser;
let bob: SimUser;
let receiver: Server;
let receiverUrl: string;
let received: Received[];
let answer: { status: number; body: string };

beforeAll(async () => {
  sim = await BuildkiteSimulator.start({ organization: 'acme' });
  alice = sim.createUser({ name: 'Alice Author', email: 'alice@example.com' });
  bob = sim.createUser({ name: 'Bob Approver', email: 'bob@example.com' });
  receiver = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received.push({ headers: req.headers, raw: Buffer.concat(chunks).toString('utf8') });
      res.writeHead(answer.status, { 'content-type': 'application/json' });
      res.end(answer.body);
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/webhooks/buildkite`;
});
afterAll(async () => {
  sim.configureWebhook(null);
  await sim.close();
  await new Promise<void>((resolve) => receiver.close(() => resolve()));
});
beforeEach(() => {
  received = [];
  answer = { status: 202, body: '{"accepted":true}' };
});

function blockedBuild(): SimBuild {
  return sim.createBuild({
    pipelineSlug: 'web',
    branch: 'feature/login',
    commit: 'abcd0b72a1e580e90712cdd9eb26d3fb41cd09c8',
    creator: alice,
    author: { name: 'Alice Author', email: 'alice@example.com' },
    steps: [
      { type: 'command', key: 'test', command: 'make test' },
      { type: 'block', key: 'deploy-gate', label: 'Deploy', fields: [{ select: 'Region', key: 'region', options: [{ label: 'EU', value: 'eu' }] }] },
      { type: 'command', key: 'deploy', command: 'make deploy' },
    ],
  });
}

/** Verifies X-Buildkite-Signature as https://buildkite.com/docs/apis/webhooks/pipelines describes, independently of the simulator. */
function verify(headers: IncomingHttpHeaders, raw: string, secret: string): { ok: boolean; timestamp: number } {
  const header = String(headers['x-buildkite-signature']);
  const match = /^timestamp=(\d+),signature=([0-9a-f]{64})$/.exec(header);
  if (match === null) return { ok: false, timestamp: NaN };
  const expected = createHmac('sha256', secret).update(`${match[1]}.${raw}`).digest();
  const given = Buffer.from(match[2]!, 'hex');
  return { ok: given.length === expected.length && timingSafeEqual(given, expected), timestamp: Number(match[1]) };
}

describe('signed deliveries (X-Buildkite-Signature)', () => {
  it('POSTs JSON with X-Buildkite-Event and an HMAC-SHA256 over "<timestamp>.<raw body>"', async () => {
    const build = blockedBuild();
    const now = Math.floor(Date.now() / 1000);
    const delivery = await sim.blockAndNotify(receiverUrl, build, { secret: SECRET });
    expect(delivery).toMatchObject({ status: 202, body: '{"accepted":true}', event: 'build.finished' });
    expect(received).toHaveLength(1);
    const [got] = received;
    expect(got?.headers['content-type']).toBe('application/json');
    expect(got?.headers['x-buildkite-event']).toBe('build.finished');
    expect(got?.headers['x-buildkite-token']).toBeUndefined();
    const { ok, timestamp } = verify(got!.headers, got!.raw, SECRET);
    expect(ok).toBe(true);
    expect(Math.abs(timestamp - now)).toBeLessThanOrEqual(2);
    // Lowercase hex; and not valid under another key or over the body alone.
    const sig = /signature=([0-9a-f]+)$/.exec(String(got?.headers['x-buildkite-signature']))![1];
    expect(sig).toBe(createHmac('sha256', SECRET).update(`${timestamp}.${got!.raw}`).digest('hex'));
    expect(sig).not.toBe(createHmac('sha256', SECRET).update(got!.raw).digest('hex'));
    expect(verify(got!.headers, got!.raw, 'other-secret').ok).toBe(false);
    expect(sim.webhookDeliveries.at(-1)).toBe(delivery);
  });

  it('exports the signing helpers', () => {
    expect(webhookSignature('k', 1619071700, '{}')).toBe(createHmac('sha256', 'k').update('1619071700.{}').digest('hex'));
    expect(signatureHeader('k', 1619071700, '{}')).toBe(`timestamp=1619071700,signature=${webhookSignature('k', 1619071700, '{}')}`);
  });

  it('signs with a given (stale) timestamp', async () => {
    const stale = Math.floor(Date.now() / 1000) - 3600;
    await sim.deliverWebhook(receiverUrl, 'ping', sim.pingPayload(receiverUrl), { secret: SECRET }, { timestamp: stale });
    const { ok, timestamp } = verify(received[0]!.headers, received[0]!.raw, SECRET);
    expect(ok).toBe(true);
    expect(timestamp).toBe(stale);
  });

  it('tampers: the body sent is not the body signed', async () => {
    const build = blockedBuild();
    await sim.blockAndNotify(receiverUrl, build, { secret: SECRET }, { tamper: true });
    const got = received[0]!;
    expect(verify(got.headers, got.raw, SECRET).ok).toBe(false);
    // Same JSON meaning, different bytes.
    expect(JSON.parse(got.raw)).toEqual(sim.buildFinishedPayload(build));
    await sim.blockAndNotify(receiverUrl, build, { secret: SECRET }, { tamper: (raw) => raw.replace('"blocked":true', '"blocked":false') });
    expect(JSON.parse(received[1]!.raw).build.blocked).toBe(false);
    expect(verify(received[1]!.headers, received[1]!.raw, SECRET).ok).toBe(false);
  });

  it('sends a raw body and extra headers as asked', async () => {
    await sim.deliverWebhook(receiverUrl, 'ping', undefined, { secret: SECRET }, { rawBody: 'x'.repeat(100), headers: { 'X-Extra': '1' } });
    expect(received[0]?.raw).toBe('x'.repeat(100));
    expect(received[0]?.headers['x-extra']).toBe('1');
    expect(verify(received[0]!.headers, received[0]!.raw, SECRET).ok).toBe(true);
  });

  it('returns status 0 with an error when nobody listens', async () => {
    const delivery = await sim.deliverWebhook('http://127.0.0.1:1/hook', 'ping', {}, { secret: SECRET });
    expect(delivery.status).toBe(0);
    expect(delivery.error).toBeDefined();
  });
});

describe('token deliveries (X-Buildkite-Token)', () => {
  it('sends the token in clear and no signature', async () => {
    const build = blockedBuild();
    answer = { status: 401, body: '{"error":"nope"}' };
    const delivery = await sim.blockAndNotify(receiverUrl, build, { token: 'plain-token' });
    expect(delivery).toMatchObject({ status: 401, body: '{"error":"nope"}' });
    expect(received[0]?.headers['x-buildkite-token']).toBe('plain-token');
    expect(received[0]?.headers['x-buildkite-signature']).toBeUndefined();
    await sim.blockAndNotify(receiverUrl, build, { token: 'plain-token' }, { tamper: true });
    expect(received[1]?.headers['x-buildkite-token']).not.toBe('plain-token');
  });
});

describe('payloads in Buildkite’s shape', () => {
  it('build.finished: a blocked build without jobs, the pipeline, and the webhook creator as sender', () => {
    const build = blockedBuild();
    const payload = sim.buildFinishedPayload(build);
    expect(Object.keys(payload)).toEqual(['event', 'build', 'pipeline', 'sender']);
    expect(payload.event).toBe('build.finished');
    const b = payload.build as Record<string, unknown>;
    expect(b).toMatchObject({ id: build.id, number: build.number, blocked: true, state: 'passed', branch: 'feature/login', commit: build.commit, creator: { id: alice.id, email: 'alice@example.com' } });
    expect(b).not.toHaveProperty('jobs');
    expect(payload.pipeline).toMatchObject({ slug: 'web' });
    expect(payload.sender).toEqual({ id: sim.apiUser.id, name: sim.apiUser.name });
  });

  it('job.activated: the manual job with unblocked_by and step_key; job.finished for a command job', async () => {
    const build = blockedBuild();
    const job = build.jobs.find((j) => j.type === 'manual')!;
    const res = await fetch(`${sim.apiUrl}/v2/organizations/acme/jobs/${job.id}/unblock`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${sim.apiToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ unblocker: bob.id, fields: { region: 'eu' } }),
    });
    expect(res.status).toBe(200);
    const activated = sim.jobActivatedPayload(job, build);
    expect(Object.keys(activated)).toEqual(['event', 'job', 'build', 'pipeline', 'sender']);
    expect(activated).toMatchObject({
      event: 'job.activated',
      job: { id: job.id, type: 'manual', state: 'unblocked', step_key: 'deploy-gate', unblocked_by: { id: bob.id, name: 'Bob Approver' }, retry_source: null },
      build: { id: build.id, blocked: false },
    });
    expect(activated.build).not.toHaveProperty('jobs');
    const deploy = build.jobs.find((j) => j.stepKey === 'deploy')!;
    sim.finishBuildJob(deploy);
    expect(sim.jobFinishedPayload(deploy, build)).toMatchObject({ event: 'job.finished', job: { id: deploy.id, type: 'script', state: 'passed', exit_status: 0 } });
  });

  it('ping: service, organization, sender', () => {
    const payload = sim.pingPayload(receiverUrl);
    expect(payload).toMatchObject({ event: 'ping', service: { provider: 'webhook', settings: { url: receiverUrl } }, organization: { slug: 'acme' }, sender: { id: sim.apiUser.id } });
  });
});

describe('automatic deliveries', () => {
  it('sends build.finished when a build blocks, job.activated on unblock, job.finished and build.finished as it runs on', async () => {
    sim.configureWebhook({ url: receiverUrl, auth: { secret: SECRET } });
    try {
      const build = blockedBuild();
      await sim.settleWebhooks();
      expect(received.map((r) => r.headers['x-buildkite-event'])).toEqual(['build.finished']);
      expect(JSON.parse(received[0]!.raw).build.blocked).toBe(true);

      const job = build.jobs.find((j) => j.type === 'manual')!;
      await fetch(`${sim.apiUrl}/v2/organizations/acme/jobs/${job.id}/unblock`, {
        method: 'PUT',
        headers: { authorization: `Bearer ${sim.apiToken}`, 'content-type': 'application/json' },
        body: JSON.stringify({ unblocker: bob.id }),
      });
      sim.advanceBuild(build);
      await sim.settleWebhooks();
      expect(received.map((r) => r.headers['x-buildkite-event'])).toEqual(['build.finished', 'job.activated', 'job.finished', 'build.finished']);
      // Each payload is the state at the time of the event.
      expect(JSON.parse(received[1]!.raw).job.unblocked_by.id).toBe(bob.id);
      expect(JSON.parse(received[3]!.raw).build).toMatchObject({ state: 'passed', blocked: false });
      for (const r of received) expect(verify(r.headers, r.raw, SECRET).ok).toBe(true);
    } finally {
      sim.configureWebhook(null);
    }
  });
});
