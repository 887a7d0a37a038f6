import { request as httpRequest } from 'node:http';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  buildFinishedBody,
  jobBody,
  postChunked,
  SECRET,
  settle,
  sign,
  signatureHeader,
  startWebhookHarness,
  type Harness,
} from './support.js';

const nowSeconds = () => Math.floor(Date.now() / 1000);

/** Each test gets distinct bodies: the store remembers bodies across tests in a file. */
let n = 0;
const uniqueBuild = (extra: Record<string, unknown> = {}) => {
  const body = buildFinishedBody();
  (body.build as Record<string, unknown>).number = 1000 + ++n;
  return { ...body, ...extra };
};

describe('signature mode', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startWebhookHarness();
  });
  afterAll(async () => h?.close());
  afterEach(async () => {
    // Let dispatches a test started land before the next test counts calls.
    await settle();
    for (const list of Object.values(h.calls)) list.length = 0;
  });

  it('accepts a valid signed build.finished with 202 and calls the handler once with the typed payload', async () => {
    const payload = buildFinishedBody();
    const res = await h.deliver('build.finished', payload);
    expect(res.status).toBe(202);
    expect(res.body).toEqual({ accepted: true, event: 'build.finished' });
    await settle();
    expect(h.calls.buildFinished).toHaveLength(1);
    const got = h.calls.buildFinished[0]!;
    expect(got.event).toBe('build.finished');
    expect(got.build).toMatchObject({ id: '01908f3a-7d1e-4b5c-9a43-2f4f0b2c1d11', number: 42, state: 'passed', blocked: true, branch: 'main', tag: 'v1.2.3', commit: '9f0c1e2d3b4a5f60718293a4b5c6d7e8f9012345', source: 'ui' });
    expect(got.build.creator).toMatchObject({ id: '0188a1b2-c3d4-4e5f-8a9b-0c1d2e3f4a5b', email: 'dana@acme.test' });
    expect(got.pipeline.slug).toBe('deploy');
    // Only validated fields reach handlers.
    expect((got.build as Record<string, unknown>).env).toBeUndefined();
    expect(h.calls.errors).toEqual([]);
  });

  it('refuses the same bytes again with 409 replayed_delivery and does not call the handler a second time', async () => {
    const body = JSON.stringify(uniqueBuild());
    const headers = { 'x-buildkite-event': 'build.finished', 'x-buildkite-signature': signatureHeader(body) };
    expect((await h.post(body, headers)).status).toBe(202);
    const again = await h.post(body, headers);
    expect(again.status).toBe(409);
    expect(again.body.error).toBe('replayed_delivery');
    await settle();
    expect(h.calls.buildFinished).toHaveLength(1);
  });

  it('treats the signature hex in upper case as the same delivery (no replay through re-encoding)', async () => {
    const body = JSON.stringify(uniqueBuild());
    const ts = nowSeconds();
    const sig = sign(body, ts);
    expect((await h.post(body, { 'x-buildkite-event': 'build.finished', 'x-buildkite-signature': `timestamp=${ts},signature=${sig}` })).status).toBe(202);
    const upper = await h.post(body, { 'x-buildkite-event': 'build.finished', 'x-buildkite-signature': `timestamp=${ts},signature=${sig.toUpperCase()}` });
    expect(upper.status).toBe(409);
    const reordered = await h.post(body, { 'x-buildkite-event': 'build.finished', 'x-buildkite-signature': `signature=${sig},timestamp=${ts}` });
    expect(reordered.status).toBe(409);
    await settle();
    expect(h.calls.buildFinished).toHaveLength(1);
  });

  it('answers a re-sent event (same body, new timestamp) with 202 duplicate and does not dispatch it again', async () => {
    const payload = uniqueBuild();
    expect((await h.deliver('build.finished', payload, { timestamp: nowSeconds() - 10 })).status).toBe(202);
    const resent = await h.deliver('build.finished', payload, { timestamp: nowSeconds() });
    expect(resent.status).toBe(202);
    expect(resent.body).toEqual({ accepted: true, event: 'build.finished', duplicate: true });
    await settle();
    expect(h.calls.buildFinished).toHaveLength(1);
  });

  it('refuses a forged signature (wrong key) and a body changed after signing', async () => {
    const payload = uniqueBuild();
    const forged = await h.deliver('build.finished', payload, { secret: 'not-the-secret' });
    expect(forged.status).toBe(401);
    expect(forged.body.error).toBe('bad_signature');

    const body = JSON.stringify(payload);
    const tampered = body.replace('"branch":"main"', '"branch":"evil"');
    expect(tampered).not.toBe(body);
    const res = await h.post(tampered, { 'x-buildkite-event': 'build.finished', 'x-buildkite-signature': signatureHeader(body) });
    expect(res.status).toBe(401);
    expect(res.body.error).toBe('bad_signature');
    await settle();
    expect(h.calls.buildFinished).toHaveLength(0);
  });

  it('refuses a signature over the body alone (without the "<timestamp>." prefix)', async () => {
    const body = JSON.stringify(uniqueBuild());
    const ts = nowSeconds();
    const { createHmac } = await import('node:crypto');
    const bodyOnly = createHmac('sha256', SECRET).update(body).digest('hex');
    const res = await h.post(body, { 'x-buildkite-event': 'build.finished', 'x-buildkite-signature': `timestamp=${ts},signature=${bodyOnly}` });
    expect(res.status).toBe(401);
    expect(res.body.error).toBe('bad_signature');
    // …while the same body signed the documented way passes.
    expect((await h.post(body, { 'x-buildkite-event': 'build.finished', 'x-buildkite-signature': `timestamp=${ts},signature=${sign(body, ts)}` })).status).toBe(202);
  });

  it('refuses deliveries signed 6 minutes ago or 6 minutes ahead, and accepts ones just inside the window', async () => {
    const stale = await h.deliver('build.finished', uniqueBuild(), { timestamp: nowSeconds() - 360 });
    expect(stale.status).toBe(401);
    expect(stale.body.error).toBe('stale_delivery');
    const future = await h.deliver('build.finished', uniqueBuild(), { timestamp: nowSeconds() + 360 });
    expect(future.status).toBe(401);
    expect(future.body.error).toBe('stale_delivery');
    expect((await h.deliver('build.finished', uniqueBuild(), { timestamp: nowSeconds() - 290 })).status).toBe(202);
    expect((await h.deliver('build.finished', uniqueBuild(), { timestamp: nowSeconds() + 290 })).status).toBe(202);
    await settle();
    expect(h.calls.buildFinished).toHaveLength(2);
  });

  it('refuses an unsigned delivery (no header, empty header, or only a token)', async () => {
    const body = JSON.stringify(uniqueBuild());
    for (const headers of [{}, { 'x-buildkite-signature': '' }, { 'x-buildkite-token': SECRET }] as Record<string, string>[]) {
      const res = await h.post(body, { 'x-buildkite-event': 'build.finished', ...headers });
      expect(res.status).toBe(401);
      expect(res.body.error).toBe('missing_signature');
    }
    await settle();
    expect(h.calls.buildFinished).toHaveLength(0);
  });

  it('refuses an unsigned delivery without waiting for its body', async () => {
    // Headers promise 1000 bytes; only 10 arrive. The refusal must not wait for the rest.
    const res = await new Promise<{ status: number; body: any }>((resolve, reject) => {
      const req = httpRequest(`${h.url}/webhooks/buildkite`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-length': '1000', 'x-buildkite-event': 'build.finished' },
      }, (r) => {
        const parts: Buffer[] = [];
        r.on('data', (c: Buffer) => parts.push(c));
        r.on('end', () => {
          resolve({ status: r.statusCode ?? 0, body: JSON.parse(Buffer.concat(parts).toString()) });
          req.destroy();
        });
      });
      req.on('error', reject);
      req.write('{"event":"');
      setTimeout(() => reject(new Error('no answer before the body was complete')), 2000).unref();
    });
    expect(res).toEqual({ status: 401, body: expect.objectContaining({ error: 'missing_signature' }) });
  });

  it('refuses malformed signature headers with 400 malformed_signature', async () => {
    const body = JSON.stringify(uniqueBuild());
    const ts = nowSeconds();
    const sig = sign(body, ts);
    const variants = [
      `timestamp=${ts}`,
      `signature=${sig}`,
      `timestamp=${ts},signature=${sig},signature=${sig}`,
      `timestamp=${ts},timestamp=${ts},signature=${sig}`,
      `timestamp=${ts},timestamp=${ts}`,
      `timestamp=${ts}, signature=${sig}`,
      ` timestamp=${ts},signature=${sig}x`,
      `timestamp=${ts};signature=${sig}`,
      `timestamp=${ts},signature=${sig.slice(0, 63)}`,
      `timestamp=${ts},signature=${sig}0`,
      `timestamp=${ts},signature=${sig.slice(0, 62)}zz`,
      `timestamp=${ts}.5,signature=${sig}`,
      `timestamp=-${ts},signature=${sig}`,
      `timestamp=+${ts},signature=${sig}`,
      `timestamp=,signature=${sig}`,
      `timestamp=${ts},signature=`,
      `timestamp=${ts},sig=${sig}`,
      `timestamp=${ts},signature=${sig},v=1`,
      `timestamp=${ts},signature=${Buffer.from(sig, 'hex').toString('base64')}`,
      `Timestamp=${ts},Signature=${sig}`,
      `t=${ts},v1=${sig}`,
    ];
    for (const header of variants) {
      const res = await h.post(body, { 'x-buildkite-event': 'build.finished', 'x-buildkite-signature': header });
      expect({ header, status: res.status, error: res.body?.error }).toEqual({ header, status: 400, error: 'malformed_signature' });
    }
    // Two header lines (joined by Node as "a, b") are refused too.
    const twice = new Headers({ 'content-type': 'application/json', 'x-buildkite-event': 'build.finished' });
    twice.append('x-buildkite-signature', `timestamp=${ts},signature=${sig}`);
    twice.append('x-buildkite-signature', `timestamp=${ts},signature=${sig}`);
    const res = await fetch(`${h.url}/webhooks/buildkite`, { method: 'POST', body, headers: twice });
    expect(res.status).toBe(400);
    expect((await res.json()).error).toBe('malformed_signature');
    // A zero-padded timestamp is a different signed message, not a way round the replay cache.
    const padded = await h.post(body, { 'x-buildkite-event': 'build.finished', 'x-buildkite-signature': `timestamp=0${ts},signature=${sig}` });
    expect(padded.status).toBe(401);
    await settle();
    expect(h.calls.buildFinished).toHaveLength(0);
  });

  it('never echoes the secret or the signature in a refusal', async () => {
    const body = JSON.stringify(uniqueBuild());
    const ts = nowSeconds();
    const wrong = sign(body, ts, 'other');
    for (const header of [`timestamp=${ts},signature=${wrong}`, `timestamp=${ts - 999},signature=${sign(body, ts - 999)}`]) {
      const res = await h.post(body, { 'x-buildkite-event': 'build.finished', 'x-buildkite-signature': header });
      expect(res.status).toBe(401);
      expect(res.text).not.toContain(SECRET);
      expect(res.text).not.toContain(header.split('signature=')[1]);
      expect(res.text).not.toContain('"branch"');
    }
  });

  it('refuses a signed body that is not a JSON object with 400 not_json', async () => {
    for (const body of ['{"event":"build.finished",', 'not json at all', '[1,2,3]', 'null', '"string"', '']) {
      const res = await h.post(body, { 'x-buildkite-event': 'build.finished', 'x-buildkite-signature': signatureHeader(body) });
      expect({ body, status: res.status, error: res.body?.error }).toEqual({ body, status: 400, error: 'not_json' });
    }
    await settle();
    expect(h.calls.buildFinished).toHaveLength(0);
  });

  it('refuses a delivery whose X-Buildkite-Event header disagrees with the signed body', async () => {
    const payload = uniqueBuild();
    const res = await h.deliver('job.activated', payload);
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('event_mismatch');
    const missing = await h.post('{}', { 'x-buildkite-signature': signatureHeader('{}') });
    expect(missing.status).toBe(400);
    expect(missing.body.error).toBe('missing_event');
    await settle();
    expect(h.calls.jobActivated).toHaveLength(0);
    expect(h.calls.buildFinished).toHaveLength(0);
  });

  it('refuses a body that is not sent as application/json with 415', async () => {
    const body = JSON.stringify(uniqueBuild());
    const res = await h.post(body, { 'content-type': 'text/plain', 'x-buildkite-event': 'build.finished', 'x-buildkite-signature': signatureHeader(body) });
    expect(res.status).toBe(415);
    expect(res.body.error).toBe('unsupported_media_type');
    const charset = await h.post(body, { 'content-type': 'application/json; charset=utf-8', 'x-buildkite-event': 'build.finished', 'x-buildkite-signature': signatureHeader(body) });
    expect(charset.status).toBe(202);
  });

  it('answers ping with 200 {pong: true} after verification, and refuses an unsigned ping', async () => {
    const ping = { event: 'ping', service: { id: 'svc', provider: 'webhook', settings: { url: 'https://port.acme.test/webhooks/buildkite' } }, organization: { slug: 'acme' }, sender: { id: 'u', name: 'Owner' } };
    const res = await h.deliver('ping', ping);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ pong: true });
    const unsigned = await h.post(JSON.stringify(ping), { 'x-buildkite-event': 'ping' });
    expect(unsigned.status).toBe(401);
    const forged = await h.deliver('ping', ping, { secret: 'nope' });
    expect(forged.status).toBe(401);
  });

  it('accepts and ignores events Port does not act on', async () => {
    const payload = { ...uniqueBuild(), event: 'build.running' };
    const res = await h.deliver('build.running', payload);
    expect(res.status).toBe(202);
    expect(res.body).toEqual({ accepted: true, event: 'build.running', ignored: true });
    const agent = await h.deliver('agent.connected', { event: 'agent.connected', agent: { id: 'a' }, sender: {} });
    expect(agent.status).toBe(202);
    expect(agent.body.ignored).toBe(true);
    await settle();
    expect(h.calls.buildFinished).toHaveLength(0);
  });

  it('drops (202, logged) a verified delivery whose payload lacks the fields handlers need', async () => {
    const payload = uniqueBuild();
    delete (payload.build as Record<string, unknown>).blocked;
    (payload.build as Record<string, unknown>).number = 'forty-two';
    const res = await h.deliver('build.finished', payload);
    expect(res.status).toBe(202);
    expect(res.body).toEqual({ accepted: true, event: 'build.finished', ignored: true });
    await settle();
    expect(h.calls.buildFinished).toHaveLength(0);
    expect(h.calls.dropped).toHaveLength(1);
    expect(h.calls.dropped[0]!.problems.join('\n')).toMatch(/build\.blocked/);
    expect(h.calls.dropped[0]!.problems.join('\n')).toMatch(/build\.number/);
  });

  it('dispatches job.activated and job.finished to their handlers', async () => {
    const activated = await h.deliver('job.activated', jobBody('job.activated'));
    expect(activated.status).toBe(202);
    const finished = await h.deliver('job.finished', jobBody('job.finished', { type: 'script', state: 'passed', unblocked_by: undefined, step_key: null }));
    expect(finished.status).toBe(202);
    await settle();
    expect(h.calls.jobActivated).toHaveLength(1);
    expect(h.calls.jobActivated[0]!.job).toMatchObject({ type: 'manual', step_key: 'approve-prod', unblocked_by: { name: 'Ann Approver', email: 'ann@acme.test' } });
    expect(h.calls.jobFinished).toHaveLength(1);
    expect(h.calls.jobFinished[0]!.job).toMatchObject({ type: 'script', state: 'passed', step_key: null, unblocked_by: null });
    expect(h.calls.buildFinished).toHaveLength(0);
  });
});

describe('size limit', () => {
  let h: Harness;
  const maxBytes = 4096;
  beforeAll(async () => {
    h = await startWebhookHarness({ maxBytes });
  });
  afterAll(async () => h?.close());

  /** A signed build.finished padded to exactly `size` bytes. */
  const padded = (size: number) => {
    const base = JSON.stringify({ ...uniqueBuild(), pad: '' });
    return base.replace('"pad":""', `"pad":"${'x'.repeat(size - Buffer.byteLength(base))}"`);
  };

  it('accepts a body of exactly maxBytes', async () => {
    const body = padded(maxBytes);
    expect(Buffer.byteLength(body)).toBe(maxBytes);
    const res = await h.post(body, { 'x-buildkite-event': 'build.finished', 'x-buildkite-signature': signatureHeader(body) });
    expect(res.status).toBe(202);
  });

  it('refuses a larger body with 413 — even a correctly signed one, and before looking at the signature', async () => {
    const body = padded(maxBytes + 1);
    const signed = await h.post(body, { 'x-buildkite-event': 'build.finished', 'x-buildkite-signature': signatureHeader(body) });
    expect(signed.status).toBe(413);
    expect(signed.body.error).toBe('delivery_too_large');
    const unsigned = await h.post(body, { 'x-buildkite-event': 'build.finished' });
    expect(unsigned.status).toBe(413);
  });

  it('refuses an oversized chunked body (no Content-Length) with 413', async () => {
    const body = Buffer.from(padded(maxBytes * 3));
    const res = await postChunked(h.url, { 'x-buildkite-event': 'build.finished', 'x-buildkite-signature': signatureHeader(body) }, [
      body.subarray(0, maxBytes),
      body.subarray(maxBytes, maxBytes * 2),
      body.subarray(maxBytes * 2),
    ]);
    expect(res.status).toBe(413);
    expect(res.body.error).toBe('delivery_too_large');
  });

  it('still accepts a signed chunked body within the limit', async () => {
    const body = Buffer.from(JSON.stringify(uniqueBuild()));
    const res = await postChunked(h.url, { 'x-buildkite-event': 'build.finished', 'x-buildkite-signature': signatureHeader(body) }, [body.subarray(0, 100), body.subarray(100)]);
    expect(res.status).toBe(202);
  });
});

describe('token mode', () => {
  const TOKEN = 'bk-webhook-token-abcdef';
  let h: Harness;
  beforeAll(async () => {
    h = await startWebhookHarness({ secret: undefined, token: TOKEN });
  });
  afterAll(async () => h?.close());

  it('accepts a delivery with the right X-Buildkite-Token and dispatches it', async () => {
    const body = JSON.stringify(uniqueBuild());
    const res = await h.post(body, { 'x-buildkite-event': 'build.finished', 'x-buildkite-token': TOKEN });
    expect(res.status).toBe(202);
    await settle();
    expect(h.calls.buildFinished).toHaveLength(1);
  });

  it('refuses a wrong, missing, or prefix token, and a signature instead of a token', async () => {
    const body = JSON.stringify(uniqueBuild());
    const cases: [Record<string, string>, number, string][] = [
      [{ 'x-buildkite-token': 'wrong' }, 401, 'bad_token'],
      [{ 'x-buildkite-token': TOKEN.slice(0, -1) }, 401, 'bad_token'],
      [{ 'x-buildkite-token': `${TOKEN}x` }, 401, 'bad_token'],
      [{}, 401, 'missing_token'],
      [{ 'x-buildkite-signature': signatureHeader(body, undefined, TOKEN) }, 401, 'missing_token'],
    ];
    for (const [headers, status, error] of cases) {
      const res = await h.post(body, { 'x-buildkite-event': 'build.finished', ...headers });
      expect({ headers, status: res.status, error: res.body?.error }).toEqual({ headers, status, error });
      expect(res.text).not.toContain(TOKEN);
    }
    await settle();
    expect(h.calls.buildFinished).toHaveLength(1);
  });

  it('refuses the same body again as a replay (the only replay defence token mode has)', async () => {
    const body = JSON.stringify(uniqueBuild());
    const headers = { 'x-buildkite-event': 'build.finished', 'x-buildkite-token': TOKEN };
    expect((await h.post(body, headers)).status).toBe(202);
    const again = await h.post(body, headers);
    expect(again.status).toBe(409);
    expect(again.body.error).toBe('replayed_delivery');
    await settle();
    expect(h.calls.buildFinished).toHaveLength(2);
  });
});

describe('not configured', () => {
  for (const [name, opts] of [
    ['neither secret nor token', { secret: undefined, token: undefined }],
    ['an empty secret', { secret: '', token: undefined }],
  ] as const) {
    it(`answers 503 webhooks_not_configured with ${name}, whatever the delivery carries`, async () => {
      const h = await startWebhookHarness(opts);
      try {
        const payload = uniqueBuild();
        const body = JSON.stringify(payload);
        for (const headers of [
          { 'x-buildkite-signature': signatureHeader(body) },
          { 'x-buildkite-signature': signatureHeader(body, undefined, '') },
          { 'x-buildkite-token': '' },
          {},
        ] as Record<string, string>[]) {
          const res = await h.post(body, { 'x-buildkite-event': 'build.finished', ...headers });
          expect(res.status).toBe(503);
          expect(res.body.error).toBe('webhooks_not_configured');
        }
        await settle();
        expect(h.calls.buildFinished).toHaveLength(0);
      } finally {
        await h.close();
      }
    });
  }
});

describe('answering before the work is done', () => {
  it('answers 202 without waiting for a slow handler, which still runs to the end', async () => {
    let finishedAt = 0;
    let startedAt = 0;
    const h = await startWebhookHarness({
      handlers: (calls) => ({
        async buildFinished(p) {
          startedAt = Date.now();
          await new Promise((r) => setTimeout(r, 2000));
          calls.buildFinished.push(p);
          finishedAt = Date.now();
        },
      }),
    });
    try {
      const t0 = Date.now();
      const res = await h.deliver('build.finished', uniqueBuild());
      const answeredAt = Date.now();
      expect(res.status).toBe(202);
      expect(answeredAt - t0).toBeLessThan(1000);
      expect(finishedAt).toBe(0);
      await new Promise((r) => setTimeout(r, 2300));
      expect(startedAt).toBeGreaterThan(0);
      expect(finishedAt).toBeGreaterThanOrEqual(answeredAt);
      expect(h.calls.buildFinished).toHaveLength(1);
    } finally {
      await h.close();
    }
  });

  it('reports a failing handler to onError, never to the response', async () => {
    const h = await startWebhookHarness({
      handlers: () => ({
        async jobFinished() {
          throw new Error('revocation failed');
        },
        jobActivated() {
          throw new Error('sync throw');
        },
      }),
    });
    try {
      // job.finished revokes, so it is handled before the answer: its failure is a 503
      // (and nothing is spent; test/revocation covers the re-send), others stay 202.
      expect((await h.deliver('job.finished', jobBody('job.finished'))).status).toBe(503);
      expect((await h.deliver('job.activated', jobBody('job.activated'))).status).toBe(202);
      await settle();
      expect(h.calls.errors.map((e) => (e as Error).message).sort()).toEqual(['revocation failed', 'sync throw']);
    } finally {
      await h.close();
    }
  });

  it('close() waits for handlers still running', async () => {
    let done = false;
    const h = await startWebhookHarness({
      handlers: () => ({
        async buildFinished() {
          await new Promise((r) => setTimeout(r, 300));
          done = true;
        },
      }),
    });
    expect((await h.deliver('build.finished', uniqueBuild())).status).toBe(202);
    // Closed at once: the dispatch may not have started yet, and is still waited for.
    await h.close();
    expect(done).toBe(true);
  });
});

describe('encapsulation', () => {
  it('leaves the JSON parser of other routes alone', async () => {
    const h = await startWebhookHarness({
      extra: (app) => app.post('/echo', async (request) => ({ got: request.body })),
    });
    try {
      const res = await fetch(`${h.url}/echo`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"a":1}' });
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ got: { a: 1 } });
      // …and the webhook route still sees raw bytes (a signature over them verifies).
      expect((await h.deliver('build.finished', uniqueBuild())).status).toBe(202);
    } finally {
      await h.close();
    }
  });
});
