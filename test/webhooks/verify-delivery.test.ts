import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, PortError } from '../../src/errors.js';
import { webhookCredentials } from '../../src/webhooks/credentials.js';
import { parseSignatureHeader, verifyDelivery, WebhookRejectedError } from '../../src/webhooks/verify-delivery.js';
import { SECRET, sign } from './support.js';

const NOW = 1_750_000_000_000;
const TS = NOW / 1000;
const body = Buffer.from('{"event":"build.finished","build":{"id":"b"}}');
const creds = { secret: SECRET, windowSeconds: 300 };
const headers = (ts: number | string = TS, sig = sign(body, ts)) => ({
  'x-buildkite-event': 'build.finished',
  'x-buildkite-signature': `timestamp=${ts},signature=${sig}`,
});

function rejection(fn: () => unknown): { code: string; status: number; message: string } {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(WebhookRejectedError);
    expect(err).toBeInstanceOf(PortError);
    const e = err as WebhookRejectedError;
    return { code: e.code, status: e.status, message: e.message };
  }
  throw new Error('expected a rejection');
}

describe('verifyDelivery', () => {
  it('returns the event and a replay key derived from the signature, never containing the secret', () => {
    const v = verifyDelivery({ headers: headers(), rawBody: body, now: NOW }, creds);
    expect(v.event).toBe('build.finished');
    expect(v.mode).toBe('signature');
    expect(v.deliveryKey).toBe(`sig:${createHash('sha256').update(sign(body, TS)).digest('hex')}`);
    expect(v.deliveryKey).not.toContain(SECRET);
    expect(v.deliveryKey).not.toContain(sign(body, TS));
  });

  it('gives the same key for the same signature in either hex case, a different one for another timestamp', () => {
    const a = verifyDelivery({ headers: headers(), rawBody: body, now: NOW }, creds).deliveryKey;
    const b = verifyDelivery({ headers: headers(TS, sign(body, TS).toUpperCase()), rawBody: body, now: NOW }, creds).deliveryKey;
    const c = verifyDelivery({ headers: headers(TS + 1), rawBody: body, now: NOW }, creds).deliveryKey;
    expect(b).toBe(a);
    expect(c).not.toBe(a);
  });

  it('keeps a signature replayable-until the end of its own window, also for timestamps in the future', () => {
    expect(verifyDelivery({ headers: headers(TS - 100), rawBody: body, now: NOW }, creds).replayableUntil).toBe(NOW + 300_000);
    // Signed 200 s ahead: valid until TS+200+300, so the replay entry must outlive now+300.
    expect(verifyDelivery({ headers: headers(TS + 200), rawBody: body, now: NOW }, creds).replayableUntil).toBe(NOW + 500_000);
  });

  it('applies the window inclusively at its edges, both ways', () => {
    expect(verifyDelivery({ headers: headers(TS - 300), rawBody: body, now: NOW }, creds).event).toBe('build.finished');
    expect(verifyDelivery({ headers: headers(TS + 300), rawBody: body, now: NOW }, creds).event).toBe('build.finished');
    expect(rejection(() => verifyDelivery({ headers: headers(TS - 301), rawBody: body, now: NOW }, creds))).toMatchObject({ code: 'stale_delivery', status: 401 });
    expect(rejection(() => verifyDelivery({ headers: headers(TS + 301), rawBody: body, now: NOW }, creds))).toMatchObject({ code: 'stale_delivery', status: 401 });
    // A narrower configured window is honoured.
    expect(rejection(() => verifyDelivery({ headers: headers(TS - 61), rawBody: body, now: NOW }, { ...creds, windowSeconds: 60 })).code).toBe('stale_delivery');
  });

  it('reports a forged stale delivery as a bad signature, not as stale', () => {
    expect(rejection(() => verifyDelivery({ headers: headers(TS - 900, sign(body, TS - 900, 'x')), rawBody: body, now: NOW }, creds)).code).toBe('bad_signature');
  });

  it('signs the exact bytes: a trailing newline or re-encoded body fails', () => {
    const h = headers();
    expect(rejection(() => verifyDelivery({ headers: h, rawBody: Buffer.concat([body, Buffer.from('\n')]), now: NOW }, creds)).code).toBe('bad_signature');
    const reencoded = Buffer.from(JSON.stringify(JSON.parse(body.toString()), null, 1));
    expect(rejection(() => verifyDelivery({ headers: h, rawBody: reencoded, now: NOW }, creds)).code).toBe('bad_signature');
  });

  it('requires the signature when a secret is configured, even if a token is configured too', () => {
    const h = { 'x-buildkite-event': 'build.finished', 'x-buildkite-token': 'tok' };
    expect(rejection(() => verifyDelivery({ headers: h, rawBody: body, now: NOW }, { ...creds, token: 'tok' }))).toMatchObject({ code: 'missing_signature', status: 401 });
  });

  it('token mode: constant-time match, key is the body hash', () => {
    const tokenCreds = { token: 'tok-123', windowSeconds: 300 };
    const v = verifyDelivery({ headers: { 'x-buildkite-event': 'job.finished', 'x-buildkite-token': 'tok-123' }, rawBody: body, now: NOW }, tokenCreds);
    expect(v).toMatchObject({ event: 'job.finished', mode: 'token', deliveryKey: `body:${createHash('sha256').update(body).digest('hex')}` });
    expect(v.replayableUntil).toBeUndefined();
    const bad = rejection(() => verifyDelivery({ headers: { 'x-buildkite-event': 'job.finished', 'x-buildkite-token': 'tok-124' }, rawBody: body, now: NOW }, tokenCreds));
    expect(bad).toMatchObject({ code: 'bad_token', status: 401 });
    expect(bad.message).not.toContain('tok-12');
  });

  it('refuses when nothing is configured (fail closed)', () => {
    expect(rejection(() => verifyDelivery({ headers: headers(), rawBody: body, now: NOW }, { windowSeconds: 300 }))).toMatchObject({ code: 'webhooks_not_configured', status: 503 });
    expect(rejection(() => verifyDelivery({ headers: headers(TS, sign(body, TS, '')), rawBody: body, now: NOW }, { secret: '', token: '', windowSeconds: 300 })).code).toBe('webhooks_not_configured');
  });

  it('requires a well-formed event name', () => {
    const h = headers();
    expect(rejection(() => verifyDelivery({ headers: { ...h, 'x-buildkite-event': undefined }, rawBody: body, now: NOW }, creds)).code).toBe('missing_event');
    for (const event of ['Build.Finished', 'build finished', 'build.', '.build', 'build..finished', '<script>', 'x'.repeat(101)]) {
      expect(rejection(() => verifyDelivery({ headers: { ...h, 'x-buildkite-event': event }, rawBody: body, now: NOW }, creds))).toMatchObject({ code: 'unsupported_event', status: 400 });
    }
    expect(verifyDelivery({ headers: { ...h, 'x-buildkite-event': 'cluster_token.registration_blocked' }, rawBody: body, now: NOW }, creds).event).toBe('cluster_token.registration_blocked');
  });
});

describe('parseSignatureHeader', () => {
  const sig = 'ab'.repeat(32);
  it('parses both orders and lower-cases the hex', () => {
    expect(parseSignatureHeader(`timestamp=1700000000,signature=${sig}`)).toEqual({ timestamp: '1700000000', signature: sig });
    expect(parseSignatureHeader(`signature=${sig.toUpperCase()},timestamp=1700000000`)).toEqual({ timestamp: '1700000000', signature: sig });
  });
  it('refuses duplicates, unknown keys, spaces, non-digits and wrong lengths', () => {
    for (const v of [
      `timestamp=1,timestamp=1,signature=${sig}`,
      `timestamp=1,signature=${sig},signature=${sig}`,
      `timestamp=1,timestamp=2`,
      `timestamp=1 ,signature=${sig}`,
      `timestamp=1,signature=${sig} `,
      `timestamp=1e9,signature=${sig}`,
      `timestamp=0x10,signature=${sig}`,
      `timestamp=${'9'.repeat(16)},signature=${sig}`,
      `timestamp=1,signature=${sig.slice(2)}`,
      `timestamp=1,signature=${sig}ab`,
      `timestamp=1,signature=${'g'.repeat(64)}`,
      `timestamp=1,signature=${sig},`,
      `,timestamp=1,signature=${sig}`,
      `=1,signature=${sig}`,
      '',
    ]) {
      expect(() => parseSignatureHeader(v), v).toThrow(WebhookRejectedError);
    }
  });
});

describe('webhookCredentials', () => {
  it('reads env: and file: references, and re-reads them on reload', () => {
    const dir = mkdtempSync(join(tmpdir(), 'port-whcred-'));
    try {
      writeFileSync(join(dir, 'secret'), 'from-file\n');
      const c = webhookCredentials({ webhookSecret: { ref: 'file:secret', key: 'buildkite.webhook_secret', baseDir: dir } });
      expect(c.secret()).toBe('from-file');
      expect(c.token()).toBeUndefined();
      writeFileSync(join(dir, 'secret'), 'rotated');
      expect(c.secret()).toBe('from-file');
      c.reload();
      expect(c.secret()).toBe('rotated');

      process.env.PORT_TEST_WEBHOOK_TOKEN = 'from-env';
      const t = webhookCredentials({ webhookToken: { ref: 'env:PORT_TEST_WEBHOOK_TOKEN', key: 'buildkite.webhook_token', baseDir: dir } });
      expect(t.token()).toBe('from-env');
      expect(t.secret()).toBeUndefined();
      // A reload that fails keeps the values in use and says why.
      delete process.env.PORT_TEST_WEBHOOK_TOKEN;
      expect(() => t.reload()).toThrow(ConfigError);
      expect(t.token()).toBe('from-env');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('fails at start when a reference cannot be read', () => {
    expect(() => webhookCredentials({ webhookSecret: { ref: 'env:PORT_TEST_UNSET_WEBHOOK', key: 'buildkite.webhook_secret', baseDir: '/' } })).toThrow(/buildkite\.webhook_secret/);
  });
});
