import { join } from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DecisionLog } from '../../src/audit/decision-log.js';
import { exportDecisions, tailDecisions } from '../../src/audit/export.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { buildLog, sampleRecord, tempDir } from './helpers.js';

/** A stream that keeps everything written to it. */
function collector(): { out: PassThrough; text: () => string } {
  const out = new PassThrough();
  const chunks: Buffer[] = [];
  out.on('data', (c: Buffer) => chunks.push(c));
  return { out, text: () => Buffer.concat(chunks).toString('utf8') };
}

function jsonLines(text: string): Record<string, unknown>[] {
  expect(text.endsWith('\n')).toBe(true);
  return text.trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe('exportDecisions', () => {
  let tmp: ReturnType<typeof tempDir>;
  let store: SqliteStore;

  beforeEach(async () => {
    tmp = tempDir();
    const dbPath = join(tmp.dir, 'port.db');
    await buildLog(dbPath, 25, 10);
    store = SqliteStore.open(dbPath);
  });
  afterEach(async () => {
    await store.close();
    tmp.cleanup();
  });

  it('writes every entry as one JSON line, in order, chain fields first', async () => {
    const { out, text } = collector();
    expect(await exportDecisions(store, out)).toEqual({ count: 25, lastSeq: 25 });
    const lines = jsonLines(text());
    expect(lines.map((l) => l.seq)).toEqual(Array.from({ length: 25 }, (_, i) => i + 1));
    expect(Object.keys(lines[0]!).slice(0, 4)).toEqual(['seq', 'hash', 'prevHash', 'id']);
    expect(lines[0]).toMatchObject({ ...sampleRecord(1), seq: 1, prevHash: '0'.repeat(64) });
    for (let i = 1; i < lines.length; i++) expect(lines[i]!.prevHash).toBe(lines[i - 1]!.hash);
  });

  it('filters by the record time: since inclusive, until exclusive', async () => {
    const { out, text } = collector();
    const at = (s: number) => new Date(Date.UTC(2025, 0, 1, 0, 0, s));
    await exportDecisions(store, out, { since: at(5), until: at(10) });
    expect(jsonLines(text()).map((l) => l.seq)).toEqual([5, 6, 7, 8, 9]);
  });

  it('starts after a seq', async () => {
    const { out, text } = collector();
    await exportDecisions(store, out, { afterSeq: 22 });
    expect(jsonLines(text()).map((l) => l.seq)).toEqual([23, 24, 25]);
  });

  it('refuses an invalid date', async () => {
    await expect(exportDecisions(store, new PassThrough(), { since: new Date('nope') })).rejects.toMatchObject({ code: 'audit_invalid_option' });
  });
});

describe('exportDecisions back-pressure', () => {
  it('never writes into a stream that asked to drain', async () => {
    const tmp = tempDir();
    try {
      const dbPath = join(tmp.dir, 'port.db');
      await buildLog(dbPath, 2500, 1000);
      const store = SqliteStore.open(dbPath);
      let violations = 0;
      let writes = 0;
      let received = '';
      const slow = new Writable({
        highWaterMark: 16,
        write(chunk: Buffer, _enc, done) {
          received += chunk.toString('utf8');
          setTimeout(done, 5);
        },
      });
      const write = slow.write.bind(slow);
      slow.write = ((chunk: string) => {
        writes++;
        if (slow.writableNeedDrain) violations++;
        return write(chunk);
      }) as typeof slow.write;
      const { count } = await exportDecisions(store, slow);
      await store.close();
      expect(count).toBe(2500);
      expect(writes).toBe(3); // one chunk per page of 1000
      expect(violations).toBe(0);
      await new Promise<void>((resolve) => slow.end(resolve));
      expect(received.trimEnd().split('\n')).toHaveLength(2500);
    } finally {
      tmp.cleanup();
    }
  });

  it('fails cleanly when the output is already closed', async () => {
    const tmp = tempDir();
    try {
      const store = SqliteStore.open(join(tmp.dir, 'port.db'));
      await new DecisionLog(store).record([sampleRecord(1)]);
      const out = new PassThrough();
      out.destroy();
      await expect(exportDecisions(store, out)).rejects.toMatchObject({ code: 'audit_output_closed' });
      await store.close();
    } finally {
      tmp.cleanup();
    }
  });
});

describe('tailDecisions', () => {
  let tmp: ReturnType<typeof tempDir>;
  let dbPath: string;
  let store: SqliteStore;

  beforeEach(async () => {
    tmp = tempDir();
    dbPath = join(tmp.dir, 'port.db');
    await buildLog(dbPath, 25, 10);
    store = SqliteStore.open(dbPath);
  });
  afterEach(async () => {
    await store.close();
    tmp.cleanup();
  });

  it('prints the last N entries, one readable line each', async () => {
    const { out, text } = collector();
    expect(await tailDecisions(store, out, { lines: 3, follow: false })).toEqual({ count: 3, lastSeq: 25 });
    expect(text().split('\n')).toEqual([
      '2025-01-01T00:00:23.000Z allow assume Port::Job::"job-23" → Port::Credential::"aws-deploy": permitted by allow-deploy [allow-deploy]',
      '2025-01-01T00:00:24.000Z deny  exchange Port::Job::"job-24" → Port::Organization::"acme": forbidden by main-only [main-only]',
      '2025-01-01T00:00:25.000Z allow assume Port::Job::"job-25" → Port::Credential::"aws-deploy": permitted by allow-deploy [allow-deploy]',
      '',
    ]);
  });

  it('defaults to the last 10 and prints all of a shorter log', async () => {
    const { out, text } = collector();
    await tailDecisions(store, out, { follow: false });
    expect(text().trimEnd().split('\n')).toHaveLength(10);
    const all = collector();
    await tailDecisions(store, all.out, { lines: 100, follow: false, json: true });
    expect(jsonLines(all.text()).map((l) => l.seq)).toEqual(Array.from({ length: 25 }, (_, i) => i + 1));
  });

  it('follows entries another process appends, until aborted', async () => {
    const { out, text } = collector();
    const controller = new AbortController();
    const tail = tailDecisions(store, out, { lines: 2, follow: true, pollMs: 10, signal: controller.signal, json: true });
    await sleep(30);
    expect(jsonLines(text()).map((l) => l.seq)).toEqual([24, 25]);

    // A second connection writes, as `port serve` would while `port audit tail` runs.
    const writer = SqliteStore.open(dbPath);
    await new DecisionLog(writer).record([sampleRecord(26)]);
    await writer.close();
    const end = Date.now() + 2000;
    while (!text().includes('"seq":26') && Date.now() < end) await sleep(10);

    controller.abort();
    expect(await tail).toEqual({ count: 3, lastSeq: 26 });
    expect(jsonLines(text()).map((l) => l.seq)).toEqual([24, 25, 26]);
  });

  it('escapes control and bidi characters in the readable format', async () => {
    await new DecisionLog(store).record([{ ...sampleRecord(26), principal: 'Port::Job::"x\n2025-01-01 allow forged"', reason: 'red \u001b[31m\u202e' }]);
    const { out, text } = collector();
    await tailDecisions(store, out, { lines: 1, follow: false });
    const line = text();
    expect(line.split('\n')).toHaveLength(2);
    expect(line).toContain('x\\u000a2025');
    expect(line).toContain('red \\u001b[31m\\u202e');
  });
});
