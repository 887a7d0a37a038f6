/**
 * A replica's revocation list is only as good as the change feed that keeps it
 * current. When the feed can't vouch for it (down or behind past `store.feed_max_lag`), or
 * a revocation it announced can't be read, every check fails closed with 503.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RevocationList, RevocationsUnconfirmedError } from '../../src/revocation/revocation-list.js';
import type { FeedHealth } from '../../src/store/repositories/changes.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';

const token = { jti: 'jti-1', jobId: 'job-1', issuedAt: 1, build: 'acme/deploy/1', agentId: 'agent-1', pool: 'c/q' };

let dir: string;
let store: SqliteStore;
let feed: FeedHealth;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'port-feed-'));
  store = SqliteStore.open(join(dir, 'port.db'));
  feed = { current: true };
  store.changes.health = () => feed;
});
afterEach(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('RevocationList and its change feed', () => {
  it('answers while the feed is current, and refuses with 503 once it is not', async () => {
    const list = await RevocationList.open(store, Date.now(), { maxLagMs: 5000 });
    expect(list.refusalOf(token)).toBeUndefined();
    feed = { current: false, reason: 'the change feed lost its database connection; last confirmed 6s ago' };
    expect(() => list.refusalOf(token)).toThrow(RevocationsUnconfirmedError);
    expect(() => list.refusalOf(token)).toThrow(/can't confirm its revocation list is current \(the change feed lost its database connection/);
    expect(() => list.isJobRevoked('job-1')).toThrow(RevocationsUnconfirmedError);
    try {
      list.refusalOf(token);
    } catch (err) {
      expect(err).toMatchObject({ status: 503, code: 'temporarily_unavailable' });
    }
    feed = { current: true };
    expect(list.refusalOf(token)).toBeUndefined();
  });

  it('applies a revocation another process made when the feed names it', async () => {
    const list = await RevocationList.open(store, Date.now(), { maxLagMs: 5000 });
    expect(list.refusalOf(token)).toBeUndefined();
    // Another process's write (another connection to the file): the feed reads it from the store's changes.
    const now = Date.now();
    const other = SqliteStore.open(join(dir, 'port.db'));
    await other.revocations.add({ id: 'r-other', kind: 'revocation', scope: 'job', target: 'job-1', origin: 'admin', revokedAt: now, expiresAt: now + 60_000, reason: 'elsewhere' });
    await other.close();
    await expect.poll(() => list.refusalOf(token)?.kind).toBe('revoked');
  });

  it('fails closed when an announced revocation cannot be read for longer than the bound, and recovers', async () => {
    const list = await RevocationList.open(store, Date.now(), { maxLagMs: 200 });
    const byIds = store.revocations.byIds.bind(store.revocations);
    let failing = true;
    store.revocations.byIds = async (ids) => {
      if (failing) throw new Error('database unreachable');
      return byIds(ids);
    };
    // Another process's revocation, which the feed names from the store's changes.
    const now = Date.now();
    const other = SqliteStore.open(join(dir, 'port.db'));
    await other.revocations.add({ id: 'r-late', kind: 'revocation', scope: 'job', target: 'job-1', origin: 'admin', revokedAt: now, expiresAt: now + 60_000, reason: 'elsewhere' });
    await other.close();
    // Within the bound the list still answers (it is at most that stale); past it, 503.
    await expect.poll(() => {
      try {
        list.refusalOf(token);
        return 'answered';
      } catch (err) {
        return err instanceof RevocationsUnconfirmedError ? 'refused' : 'other';
      }
    }, { timeout: 5000 }).toBe('refused');
    failing = false;
    await expect.poll(() => list.refusalOf(token)?.kind, { timeout: 5000 }).toBe('revoked');
  });
});
