/**
 * `audit.checkpoint_sinks`: each signed checkpoint leaves the database as it is made —
 * appended to a file, POSTed to a real local HTTP server — in order, retried with
 * backoff, never holding up the checkpoint (or a decision) itself.
 */
import { once } from 'node:events';
import { mkdirSync, readFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseAnchor } from '../../src/audit/checkpoint-anchor.js';
import { checkpointToJson } from '../../src/audit/checkpoint-line.js';
import { CheckpointSinks } from '../../src/audit/checkpoint-sinks.js';
import { Checkpointer } from '../../src/audit/checkpointer.js';
import { DecisionLog } from '../../src/audit/decision-log.js';
import type { AuditError } from '../../src/audit/errors.js';
import { verifyAuditLog } from '../../src/audit/verify.js';
import type { CheckpointSinkConfig } from '../../src/config/config.js';
import { configFromObject } from '../../src/config/config.js';
import { SigningKeys } from '../../src/issuer/signing-keys.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { startHarness } from '../helpers/port-harness.js';
import { KEY_OPTIONS, sampleRecord, tempDir } from './helpers.js';

interface Received {
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
}

/** A real HTTP server that answers each POST with the next status in `statuses` (then 200), or never when `hang`. */
async function sinkServer(opts: { statuses?: number[]; hang?: boolean } = {}): Promise<{ url: string; received: Received[]; server: Server }> {
  const received: Received[] = [];
  const statuses = [...(opts.statuses ?? [])];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received.push({ path: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      if (opts.hang) return;
      res.statusCode = statuses.shift() ?? 200;
      res.end();
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, received, server };
}

async function until(check: () => boolean | Promise<boolean>, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await sleep(5);
  }
}

describe('checkpoint sinks', () => {
  let tmp: ReturnType<typeof tempDir>;
  let store: SqliteStore;
  let keys: SigningKeys;
  const servers: Server[] = [];

  beforeEach(async () => {
    tmp = tempDir();
    store = SqliteStore.open(join(tmp.dir, 'port.db'));
    keys = await SigningKeys.open(store, KEY_OPTIONS);
  });
  afterEach(async () => {
    for (const s of servers.splice(0)) s.closeAllConnections(), s.close();
    await store.close().catch(() => undefined);
    delete process.env.PORT_TEST_SINK_TOKEN;
    tmp.cleanup();
  });

  /** Writes three checkpoints through the real Checkpointer, shipping each to `sinks`. */
  async function threeCheckpoints(sinks: CheckpointSinks) {
    const cp = new Checkpointer(store, keys, { every: 1000, intervalSeconds: 300, sinks });
    const log = new DecisionLog(store);
    for (let i = 1; i <= 3; i++) {
      await log.record([sampleRecord(i)]);
      await cp.checkpointNow();
    }
    return store.decisions.listCheckpoints();
  }

  it('a file sink gets one fsynced JSON line per checkpoint, in order, usable as an anchor', async () => {
    const file = join(tmp.dir, 'anchor.jsonl');
    const errors: AuditError[] = [];
    const sinks = new CheckpointSinks([{ kind: 'file', path: file }], { onError: (e) => errors.push(e) });
    const stored = await threeCheckpoints(sinks);
    await sinks.idle();
    const lines = readFileSync(file, 'utf8').trimEnd().split('\n');
    expect(lines.map((l) => JSON.parse(l))).toEqual(stored.map(checkpointToJson));
    expect(errors).toEqual([]);
    const keyMap = new Map((await store.keys.list()).map((k) => [k.kid, k.publicJwk]));
    const anchored = parseAnchor(readFileSync(file, 'utf8'), file);
    expect(await verifyAuditLog(store, keyMap, { anchor: anchored })).toMatchObject({ ok: true, anchored: 3 });
  });

  it('a URL sink gets each checkpoint POSTed with its secret header, retrying a 503 with backoff', async () => {
    const { url, received, server } = await sinkServer({ statuses: [503] });
    servers.push(server);
    process.env.PORT_TEST_SINK_TOKEN = 'Bearer sink-secret';
    const sink: CheckpointSinkConfig = {
      kind: 'http',
      url: `${url}/anchors?stream=port`,
      headers: { authorization: { ref: 'env:PORT_TEST_SINK_TOKEN', key: 'audit.checkpoint_sinks[0].headers.authorization', baseDir: tmp.dir } },
    };
    const errors: AuditError[] = [];
    const sinks = new CheckpointSinks([sink], { onError: (e) => errors.push(e), backoffMs: 10 });
    const stored = await threeCheckpoints(sinks);
    await sinks.idle();
    // The first POST was answered 503 and sent again; then each checkpoint once, in order.
    expect(received.map((r) => (JSON.parse(r.body) as { num: number }).num)).toEqual([1, 1, 2, 3]);
    expect(received.slice(1).map((r) => JSON.parse(r.body))).toEqual(stored.map(checkpointToJson));
    expect(received.every((r) => r.path === '/anchors?stream=port' && r.headers.authorization === 'Bearer sink-secret')).toBe(true);
    expect(received[0]!.headers['content-type']).toBe('application/json');
    expect(errors).toEqual([]);
  });

  it('a sink that never answers holds up nothing; the failure is reported once per checkpoint, naming only the origin', async () => {
    const { url, server } = await sinkServer({ hang: true });
    servers.push(server);
    const errors: AuditError[] = [];
    const sinks = new CheckpointSinks([{ kind: 'http', url: `${url}/hook?token=secret-in-query`, headers: {} }], {
      onError: (e) => errors.push(e),
      timeoutMs: 100,
      attempts: 2,
      backoffMs: 10,
    });
    const cp = new Checkpointer(store, keys, { every: 1000, intervalSeconds: 300, sinks });
    const log = new DecisionLog(store);
    await log.record([sampleRecord(1)]);
    // Resolves while the sink hangs: shipping is queued, not awaited.
    expect(await cp.checkpointNow()).toMatchObject({ num: 1 });
    expect(errors).toEqual([]);
    await until(() => errors.length === 1);
    expect(errors[0]).toMatchObject({ code: 'audit_sink_failed' });
    expect(errors[0]!.message).toBe(`checkpoint sink 1 (URL ${url}) did not take checkpoint 1: no answer within 0.1 s`);
    expect(errors[0]!.message).not.toContain('secret-in-query');
  });

  it('a 4xx is not retried, and a file that cannot be written is reported', async () => {
    const { url, received, server } = await sinkServer({ statuses: [401] });
    servers.push(server);
    const errors: AuditError[] = [];
    const sinks = new CheckpointSinks(
      [
        { kind: 'http', url, headers: {} },
        { kind: 'file', path: join(tmp.dir, 'no', 'such', 'dir', 'anchor.jsonl') },
      ],
      { onError: (e) => errors.push(e), backoffMs: 1 },
    );
    sinks.ship((await threeCheckpointsWithout())[0]!);
    await sinks.idle();
    expect(received).toHaveLength(1);
    expect(errors.map((e) => e.message).sort()).toEqual([
      `checkpoint sink 1 (URL ${url}) did not take checkpoint 1: answered 401`,
      `checkpoint sink 2 (file ${join(tmp.dir, 'no', 'such', 'dir', 'anchor.jsonl')}) did not take checkpoint 1: cannot append (ENOENT)`,
    ]);
  });

  async function threeCheckpointsWithout() {
    const cp = new Checkpointer(store, keys, { every: 1000, intervalSeconds: 300 });
    await new DecisionLog(store).record([sampleRecord(1)]);
    await cp.checkpointNow();
    return store.decisions.listCheckpoints();
  }

  it('audit.checkpoint_sinks parses file and URL sinks, and refuses anything else naming the key', () => {
    mkdirSync(join(tmp.dir, 'policies'));
    const base = { server: { public_url: 'http://127.0.0.1:1' }, buildkite: { organization: 'acme' } };
    process.env.PORT_TEST_SINK_TOKEN = 't';
    const c = configFromObject(
      { ...base, audit: { checkpoint_sinks: [{ file: './anchor.jsonl' }, { url: 'https://anchor.example/p', headers: { 'X-Api-Key': 'env:PORT_TEST_SINK_TOKEN' } }] } },
      join(tmp.dir, 'port.yaml'),
    );
    expect(c.audit.checkpointSinks).toEqual([
      { kind: 'file', path: join(tmp.dir, 'anchor.jsonl') },
      { kind: 'http', url: 'https://anchor.example/p', headers: { 'X-Api-Key': { ref: 'env:PORT_TEST_SINK_TOKEN', key: 'audit.checkpoint_sinks[1].headers.X-Api-Key', baseDir: tmp.dir } } },
    ]);
    expect(configFromObject(base, join(tmp.dir, 'port.yaml')).audit.checkpointSinks).toEqual([]);
    expect(() => configFromObject({ ...base, audit: { checkpoint_sinks: [{ url: 'ftp://x' }] } }, join(tmp.dir, 'port.yaml'))).toThrow(/audit\.checkpoint_sinks/);
    expect(() => configFromObject({ ...base, audit: { checkpoint_sinks: [{ url: 'https://x', headers: { a: 'inline-secret' } }] } }, join(tmp.dir, 'port.yaml'))).toThrow(
      /secret reference/,
    );
  });
});

describe('port serve with audit.checkpoint_sinks', () => {
  it('ships the checkpoint it writes at start to a file and a URL sink', async () => {
    const { url, received, server } = await sinkServer();
    process.env.PORT_TEST_SINK_TOKEN = 'Bearer serve-sink';
    const h = await startHarness({
      config: {
        audit: { checkpoint_every: 5, checkpoint_sinks: [{ file: './sink.jsonl' }, { url: `${url}/in`, headers: { authorization: 'env:PORT_TEST_SINK_TOKEN' } }] },
      },
    });
    try {
      // An empty log still gets its first (heartbeat) checkpoint when Port starts.
      await until(() => received.length === 1);
      const stored = await h.port.store.decisions.listCheckpoints();
      expect(stored).toHaveLength(1);
      expect(JSON.parse(received[0]!.body)).toEqual(checkpointToJson(stored[0]!));
      expect(received[0]!.headers.authorization).toBe('Bearer serve-sink');
      await until(() => {
        try {
          return readFileSync(join(h.dir, 'sink.jsonl'), 'utf8').length > 0;
        } catch {
          return false;
        }
      });
      expect(JSON.parse(readFileSync(join(h.dir, 'sink.jsonl'), 'utf8'))).toEqual(checkpointToJson(stored[0]!));
    } finally {
      await h.close();
      server.closeAllConnections();
      server.close();
      delete process.env.PORT_TEST_SINK_TOKEN;
    }
  });
});
