/**
 * One SQLite file shared by several Port processes (`server.workers`): what one commits,
 * the others' caches hear through the `changes` table, and processes opening a new file
 * at the same moment create and migrate it once, without failing.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { describeChangeFeedContract, Heard, revocation, until } from './change-feed-contract.js';

describeChangeFeedContract('SQLite (two processes on one file)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'port-feed-'));
  const writer = SqliteStore.open(join(dir, 'port.db'));
  const subscriber = SqliteStore.open(join(dir, 'port.db'));
  return {
    writer,
    subscriber,
    catchUp: () => subscriber.changes.catchUp(),
    async cleanup() {
      await Promise.all([writer.close(), subscriber.close()]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
});

describe('the SQLite change feed between processes', () => {
  it('hears another connection’s commits on its own timer, and the writer hears its own before its write resolves', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'port-feed-'));
    const one = SqliteStore.open(join(dir, 'port.db'));
    const two = SqliteStore.open(join(dir, 'port.db'));
    try {
      const [heardOne, heardTwo] = [new Heard(one.changes), new Heard(two.changes)];
      await one.revocations.add(revocation('r-1'));
      expect(heardOne.changes).toEqual([{ topic: 'revocations', key: 'r-1' }]);
      // No catch-up asked for: the timer reads it.
      await until(() => heardTwo.changes.length === 1, 'the other connection to hear it');
      expect(heardTwo.changes).toEqual([{ topic: 'revocations', key: 'r-1' }]);
      expect(two.changes.health(5000)).toEqual({ current: true });
    } finally {
      await Promise.all([one.close(), two.close()]);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a process that has not read for longer than changes are kept, some of them purged meanwhile, fails closed for good', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'port-feed-'));
    const one = SqliteStore.open(join(dir, 'port.db'));
    const two = SqliteStore.open(join(dir, 'port.db'));
    try {
      two.changes.close();
      await one.revocations.add(revocation('missed'));
      await one.revocations.add(revocation('kept'));
      const raw = new Database(join(dir, 'port.db'));
      raw.prepare("DELETE FROM changes WHERE key <> 'kept'").run();
      raw.close();
      // Two's last read is now more than the retention ago.
      (two.changes as unknown as { confirmedAt: number }).confirmedAt = Date.now() - 3_700_000;
      expect(two.changes.health(5000)).toEqual({ current: false, reason: expect.stringMatching(/missed changes older than 1 h; restart this process/) });
      await two.changes.catchUp();
      expect(two.changes.health(5000).current).toBe(false);
    } finally {
      await Promise.all([one.close(), two.close()]);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('opening one new SQLite file from several processes at once', () => {
  it('six processes create and migrate it once, every one opens it, and they make one first signing key between them', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'port-open-'));
    const file = join(dir, 'port.db');
    // The compiled store (dist/, built by `npm test`), so each child is a plain Node process.
    const dist = resolve(import.meta.dirname, '..', '..', 'dist');
    const store = join(dist, 'store', 'sqlite', 'sqlite-store.js');
    const keys = join(dist, 'issuer', 'signing-keys.js');
    const go = Date.now() + 1500;
    const script = `
      const { SqliteStore } = await import(${JSON.stringify(store)});
      const { SigningKeys } = await import(${JSON.stringify(keys)});
      while (Date.now() < ${go}) {}
      try {
        const s = SqliteStore.open(${JSON.stringify(file)}, { create: true });
        // As port serve does on a first start: no key yet, so each makes one unless another's covers it.
        const k = await SigningKeys.open(s, { algorithm: 'ES256', rotation: 86400, overlap: 3660 });
        const kid = k.signer().kid;
        k.close();
        await s.close();
        console.log('opened ' + kid);
      } catch (err) {
        console.log('failed: ' + err.message);
      }`;
    try {
      const outputs = await Promise.all(
        Array.from({ length: 6 }, () =>
          new Promise<string>((done, fail) => {
            const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
            let out = '';
            child.stdout.on('data', (d) => (out += d));
            child.on('error', fail);
            child.on('exit', () => done(out.trim()));
          }),
        ),
      );
      for (const o of outputs) expect(o).toMatch(/^opened \S+$/);
      const kids = new Set(outputs.map((o) => o.slice('opened '.length)));
      // Their clocks read a few ms apart, but the first key stored is dated back, so it signs
      // at every other process's now: they all find it covering and sign with it.
      expect(kids.size, outputs.join('\n')).toBe(1);
      const db = new Database(file, { readonly: true });
      try {
        expect(db.prepare('SELECT kid FROM signing_keys').all()).toEqual([{ kid: [...kids][0] }]);
        const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'changes'").all();
        expect(tables).toHaveLength(1);
        const version = db.pragma('user_version', { simple: true }) as number;
        const fresh = SqliteStore.open(join(dir, 'fresh.db'));
        await fresh.close();
        const freshDb = new Database(join(dir, 'fresh.db'), { readonly: true });
        expect(version).toBe(freshDb.pragma('user_version', { simple: true }));
        freshDb.close();
      } finally {
        db.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
