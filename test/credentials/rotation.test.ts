import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Harness } from '../helpers/port-harness.js';
import { admin, decisionsSince, deployJob, eventually, headSeq, portToken, release, startCredsHarness } from './support.js';

const HOOK_SECRET = 'hook-signing-secret-5b2d';

/** A command hook that logs each request it gets and prints `<prefix>-v<version>` for rotate. */
function writeHook(dir: string, prefix: string): string {
  const path = join(dir, `${prefix}-hook.sh`);
  writeFileSync(
    path,
    `#!/bin/sh
req=$(cat)
printf '%s\\n' "$req" >> ${dir}/${prefix}-requests.log
[ -e ${dir}/${prefix}-fail ] && { echo "hook-output-must-not-leak" ; exit 7; }
case "$req" in
  *'"action":"rotate"'*) v=$(printf '%s' "$req" | sed 's/.*"version":\\([0-9]*\\).*/\\1/'); printf '${prefix}-secret-v%s\\n' "$v" ;;
esac
exit 0
`,
  );
  chmodSync(path, 0o755);
  return path;
}

function hookRequests(dir: string, prefix: string): Record<string, unknown>[] {
  const file = join(dir, `${prefix}-requests.log`);
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/**
 * The test's HTTP rotation hook, a receiver as the README asks for: it checks Port's
 * signature (constant-time), a fresh timestamp that matches the body's, and refuses a
 * `request_id` it has seen before.
 */
interface HttpHook {
  url: string;
  server: Server;
  mode: 'ok' | 'bad-json' | 'error' | 'no-value' | 'bad-id';
  calls: { body: Record<string, unknown>; signatureValid: boolean; replayed: boolean; raw: string; signature: string }[];
}

async function startHttpHook(): Promise<HttpHook> {
  const hook: HttpHook = { url: '', server: undefined as unknown as Server, mode: 'ok', calls: [] };
  const seen = new Set<unknown>();
  hook.server = createServer((req, res) => {
    let raw = '';
    req.on('data', (c) => (raw += c));
    req.on('end', () => {
      const signature = String(req.headers['x-port-signature'] ?? '');
      const m = /^timestamp=(\d+),signature=([0-9a-f]{64})$/.exec(signature);
      const expected = m ? createHmac('sha256', HOOK_SECRET).update(`${m[1]}.${raw}`).digest() : undefined;
      const body = JSON.parse(raw) as Record<string, unknown>;
      const fresh = m !== null && Math.abs(Date.now() / 1000 - Number(m[1])) < 300 && body.timestamp === Number(m[1]);
      const signatureValid = m !== null && fresh && timingSafeEqual(expected!, Buffer.from(m[2]!, 'hex'));
      const replayed = seen.has(body.request_id);
      hook.calls.push({ body, signatureValid, replayed, raw, signature });
      if (!signatureValid || replayed) return res.writeHead(401).end();
      seen.add(body.request_id);
      if (hook.mode === 'error') return res.writeHead(500, { 'content-type': 'application/json' }).end('{"value":"from-a-500"}');
      if (hook.mode === 'bad-json') return res.writeHead(200, { 'content-type': 'application/json' }).end('value=oops');
      if (hook.mode === 'bad-id') return res.writeHead(200, { 'content-type': 'application/json' }).end('{"value":"bad-id-value","id":"two words\\n"}');
      if (hook.mode === 'no-value') return res.writeHead(200, { 'content-type': 'application/json' }).end('{"secret":"x"}');
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body.action === 'rotate' ? { value: `http-secret-v${String(body.version)}`, id: `key-${String(body.version)}` } : {}));
    });
  });
  await new Promise<void>((r) => hook.server.listen(0, '127.0.0.1', r));
  hook.url = `http://127.0.0.1:${(hook.server.address() as AddressInfo).port}/rotate`;
  return hook;
}

let h: Harness;
let dir: string;
let httpHook: HttpHook;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'port-rotation-'));
  httpHook = await startHttpHook();
  process.env.PORT_TEST_ROT_INITIAL = 'rot-initial-value-31ad';
  process.env.PORT_TEST_HOOK_SECRET = HOOK_SECRET;
  process.env.PORT_TEST_KEK = 'key-encryption-key-for-the-tests-only';
  h = await startCredsHarness({
    issuer: { key_encryption_key: 'env:PORT_TEST_KEK' },
    credentials: {
      rot: { type: 'secret', value: 'env:PORT_TEST_ROT_INITIAL', rotation: { overlap: '2s', timeout: '5s', hook: { command: writeHook(dir, 'rot') } } },
      sched: { type: 'secret', value: 'command:printf sched-initial', rotation: { every: '2s', overlap: '1s', timeout: '5s', hook: { command: writeHook(dir, 'sched') } } },
      web: { type: 'secret', value: 'command:printf web-initial', rotation: { overlap: '1h', timeout: '3s', hook: { url: httpHook.url, signing_secret: 'env:PORT_TEST_HOOK_SECRET' } } },
      plain: { type: 'secret', value: 'command:printf plain' },
    },
  });
});
afterAll(async () => {
  await h?.close();
  await new Promise((r) => httpHook?.server.close(r));
  rmSync(dir, { recursive: true, force: true });
});

describe('rotation through the admin API, with overlap', () => {
  it('rotates, serves the new value, keeps the old one accepted for the overlap, then retires it', async () => {
    const bearer = await portToken(h, deployJob(h), 'rot');
    expect((await release(h, 'rot', bearer)).body.value).toBe('rot-initial-value-31ad');
    const before = await headSeq(h);

    const rotated = await admin(h, 'POST', '/v1/admin/credentials/rot/rotate');
    expect(rotated.status).toBe(200);
    expect(rotated.headers.get('cache-control')).toBe('no-store');
    expect(rotated.body).toMatchObject({ name: 'rot', version: 1, previous_version: 0 });
    expect(JSON.stringify(rotated.body)).not.toContain('rot-secret-v1');
    const [rotateCall] = hookRequests(dir, 'rot');
    expect(hookRequests(dir, 'rot')).toHaveLength(1);
    expect(rotateCall).toEqual({ action: 'rotate', credential: 'rot', version: 1, previous_version: 0, request_id: expect.stringMatching(UUID), timestamp: expect.any(Number) });

    // Jobs now get the new value; the old one is reported accepted until the overlap ends.
    expect((await release(h, 'rot', bearer)).body).toMatchObject({ name: 'rot', value: 'rot-secret-v1' });
    const status = await admin(h, 'GET', '/v1/admin/credentials/rot');
    expect(status.body.versions).toEqual([
      { version: 0, state: 'accepted', created_at: expect.any(String), retires_at: rotated.body.previous_retires_at },
      { version: 1, state: 'current', created_at: expect.any(String) },
    ]);

    // After the overlap: the retire hook call, and the version is retired.
    const retired = await eventually(async () => {
      const s = await admin(h, 'GET', '/v1/admin/credentials/rot');
      return s.body.versions[0].state === 'retired' ? s.body.versions[0] : undefined;
    });
    expect(Date.parse(retired.retired_at)).toBeGreaterThanOrEqual(Date.parse(rotated.body.previous_retires_at));
    // Version 0 is the configured value: no rotate call made it, so no rotation_id.
    const retireCall = hookRequests(dir, 'rot').at(-1)!;
    expect(retireCall).toEqual({ action: 'retire', credential: 'rot', version: 0, request_id: expect.stringMatching(UUID), timestamp: expect.any(Number) });
    expect(retireCall.request_id).not.toBe(rotateCall!.request_id);

    // The retired state is stored first and its decision appended right after, in a
    // second write: wait for the record rather than reading in between the two.
    const rotRecords = async () => (await decisionsSince(h, before)).filter((r) => r.action === 'rotate' && r.resource === 'Port::Credential::"rot"');
    const records = await eventually(async () => {
      const found = await rotRecords();
      return found.some((r) => r.context.event === 'retire') ? found : undefined;
    });
    expect(records.map((r) => [r.decision, r.resource, r.context.event, r.context.trigger, r.context.version])).toEqual([
      ['allow', 'Port::Credential::"rot"', 'rotate', 'admin', 1],
      ['allow', 'Port::Credential::"rot"', 'retire', 'schedule', 0],
    ]);
    expect(records[0]!.context).toMatchObject({ previous_version: 0, retires_at: rotated.body.previous_retires_at, rotation_id: rotateCall!.request_id });
    const all = JSON.stringify(await decisionsSince(h, 0));
    expect(all).not.toContain('rot-secret-v1');
    expect(all).not.toContain('rot-initial-value-31ad');
  });

  it('keeps the current value when the hook fails, and audits the failure without its output', async () => {
    const bearer = await portToken(h, deployJob(h), 'rot');
    const current = (await release(h, 'rot', bearer)).body.value;
    const before = await headSeq(h);
    writeFileSync(join(dir, 'rot-fail'), '');
    try {
      const res = await admin(h, 'POST', '/v1/admin/credentials/rot/rotate');
      expect(res.status).toBe(503);
      expect(res.body).toEqual({ error: 'credential_unavailable', error_description: expect.stringContaining('exited with status 7') });
      expect(JSON.stringify(res.body)).not.toContain('hook-output');
    } finally {
      rmSync(join(dir, 'rot-fail'));
    }
    expect((await release(h, 'rot', bearer)).body.value).toBe(current);
    // Only rot's rotate events: sched rotates on its own every 2 s meanwhile.
    const [r] = (await decisionsSince(h, before)).filter((x) => x.action === 'rotate' && x.resource === 'Port::Credential::"rot"' && x.context.event === 'rotate');
    expect(r).toMatchObject({ decision: 'deny', context: { event: 'rotate', trigger: 'admin' } });
    expect(JSON.stringify(r)).not.toContain('hook-output');
  });

  it('refuses the admin API without the admin token, and rotation of a secret without a hook', async () => {
    expect((await admin(h, 'POST', '/v1/admin/credentials/rot/rotate', 'wrong')).status).toBe(401);
    const anon = await fetch(`${h.url}/v1/admin/credentials/rot/rotate`, { method: 'POST' });
    expect(anon.status).toBe(401);
    expect((await admin(h, 'POST', '/v1/admin/credentials/plain/rotate')).body.error).toBe('invalid_request');
    expect((await admin(h, 'POST', '/v1/admin/credentials/nope/rotate')).status).toBe(404);
    // A job's Port token is no admin token.
    const bearer = await portToken(h, deployJob(h), 'rot');
    expect((await admin(h, 'POST', '/v1/admin/credentials/rot/rotate', bearer)).status).toBe(401);
  });

  it('stores rotated values sealed with issuer.key_encryption_key', async () => {
    await admin(h, 'POST', '/v1/admin/credentials/rot/rotate');
    const bearer = await portToken(h, deployJob(h), 'rot');
    const value = (await release(h, 'rot', bearer)).body.value as string;
    expect(value).toMatch(/^rot-secret-v\d+$/);
    const db = join(h.dir, 'port.db');
    const bytes = Buffer.concat([readFileSync(db), existsSync(`${db}-wal`) ? readFileSync(`${db}-wal`) : Buffer.alloc(0)]);
    expect(bytes.includes('rot-secret-v')).toBe(false);
    expect(bytes.includes('port-kw1.')).toBe(true);
  });
});

describe('rotation on a schedule', () => {
  it('rotates every `every`, counting from the newest version, and says when the value retires', async () => {
    const bearer = await portToken(h, deployJob(h), 'sched');
    const v = await eventually(async () => {
      const s = await admin(h, 'GET', '/v1/admin/credentials/sched');
      return s.body.versions.length >= 2 ? s.body.versions : undefined;
    });
    expect(v[0]).toMatchObject({ version: 0 });
    // The version is stored before its decision is appended (two writes): wait for the record.
    const records = await eventually(async () => {
      const found = (await decisionsSince(h, 0)).filter((r) => r.resource === 'Port::Credential::"sched"' && r.context.event === 'rotate');
      return found.length > 0 ? found : undefined;
    });
    expect(records[0]).toMatchObject({ decision: 'allow', context: { trigger: 'schedule', version: 1, previous_version: 0 } });
    const res = await release(h, 'sched', bearer);
    expect(res.body.value).toMatch(/^sched-secret-v\d+$/);
    // Rotated at the latest every (2 s) after its creation, accepted for the overlap (1 s) after that.
    const current = (await admin(h, 'GET', '/v1/admin/credentials/sched')).body.versions.at(-1);
    expect(Date.parse(res.body.expires_at)).toBeLessThanOrEqual(Date.parse(current.created_at) + 3000);
    // Version 0 is retired through the hook once its overlap is over.
    await eventually(async () => (hookRequests(dir, 'sched').some((r) => r.action === 'retire' && r.version === 0) ? true : undefined));
  });
});

describe('signed HTTP rotation hook', () => {
  it('POSTs the signed request and uses the value answered', async () => {
    const res = await admin(h, 'POST', '/v1/admin/credentials/web/rotate');
    expect(res.status).toBe(200);
    const call = httpHook.calls.at(-1)!;
    expect(call.signatureValid).toBe(true);
    // The nonce and the timestamp are inside the signed body; the header's timestamp is the body's.
    expect(call.body).toEqual({ action: 'rotate', credential: 'web', version: 1, previous_version: 0, request_id: expect.stringMatching(UUID), timestamp: expect.any(Number) });
    expect(call.signature).toMatch(new RegExp(`^timestamp=${String(call.body.timestamp)},signature=`));
    const bearer = await portToken(h, deployJob(h), 'web');
    expect((await release(h, 'web', bearer)).body.value).toBe('http-secret-v1');
    // The hook's id for the value is kept with it (and audited), so retire can name it.
    const [audit] = (await decisionsSince(h, 0)).filter((r) => r.resource === 'Port::Credential::"web"' && r.context.event === 'rotate' && r.decision === 'allow');
    expect(audit!.context).toMatchObject({ rotation_id: call.body.request_id, value_id: 'key-1' });
  });

  it.each(['error', 'bad-json', 'no-value', 'bad-id'] as const)('leaves the current value in place when the hook answers %s', async (mode) => {
    httpHook.mode = mode;
    try {
      const res = await admin(h, 'POST', '/v1/admin/credentials/web/rotate');
      expect(res.status).toBe(503);
      expect(res.body.error).toBe('credential_unavailable');
      expect(JSON.stringify(res.body)).not.toContain('from-a-500');
    } finally {
      httpHook.mode = 'ok';
    }
    const bearer = await portToken(h, deployJob(h), 'web');
    expect((await release(h, 'web', bearer)).body.value).toBe('http-secret-v1');
    const status = await admin(h, 'GET', '/v1/admin/credentials/web');
    expect(status.body.versions.map((v: { version: number }) => v.version)).toEqual([0, 1]);
  });

  it('sends a fresh request id each call, so a captured request replayed to the hook is refused', async () => {
    const first = httpHook.calls.find((c) => c.body.action === 'rotate' && c.signatureValid)!;
    expect((await admin(h, 'POST', '/v1/admin/credentials/web/rotate')).status).toBe(200);
    const second = httpHook.calls.at(-1)!;
    expect(second).toMatchObject({ signatureValid: true, replayed: false });
    expect(second.body.request_id).not.toBe(first.body.request_id);

    // An eavesdropper re-sends a captured rotate, byte for byte, inside the time window:
    // its signature is valid, and its request_id is what gives it away.
    const replay = await fetch(httpHook.url, { method: 'POST', headers: { 'content-type': 'application/json', 'x-port-signature': second.signature }, body: second.raw });
    expect(replay.status).toBe(401);
    expect(httpHook.calls.at(-1)).toMatchObject({ signatureValid: true, replayed: true });
    // Changing the id to dodge that breaks the signature: the id is signed.
    const renamed = second.raw.replace(String(second.body.request_id), '00000000-0000-4000-8000-000000000000');
    expect(renamed).not.toBe(second.raw);
    const forged = await fetch(httpHook.url, { method: 'POST', headers: { 'content-type': 'application/json', 'x-port-signature': second.signature }, body: renamed });
    expect(forged.status).toBe(401);
    expect(httpHook.calls.at(-1)).toMatchObject({ signatureValid: false, replayed: false });
    // Nothing the replays did changed what jobs get.
    const bearer = await portToken(h, deployJob(h), 'web');
    expect((await release(h, 'web', bearer)).body.value).toBe('http-secret-v2');
  });
});
