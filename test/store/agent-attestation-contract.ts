import { describe, expect, it } from 'vitest';
import { ATTESTATION_KEPT_MS, type AgentAttestationRecord } from '../../src/store/repositories/agent-attestations.js';
import type { Store } from '../../src/store/store.js';

/**
 * What every backend's AgentAttestationStore must do: `open` gives two stores on one
 * database (two Port processes on one SQLite file, or two replicas on one PostgreSQL),
 * empty of attestations and instance keys.
 */
export function describeAgentAttestationContract(name: string, open: () => Promise<{ a: Store; b: Store; cleanup: () => Promise<void> }>): void {
  describe(`AgentAttestationStore contract: ${name}`, () => {
    const T = 1_800_000_000_000;
    const HOUR = 3_600_000;
    const withStores = (fn: (a: Store, b: Store) => Promise<void>) => async () => {
      const { a, b, cleanup } = await open();
      try {
        await fn(a, b);
      } finally {
        await cleanup();
      }
    };
    const attestation = (agentId: string, over: Partial<AgentAttestationRecord> = {}): AgentAttestationRecord => ({
      agentId,
      pool: 'linux/deploy',
      jobId: `job-${agentId}`,
      methods: ['aws_iam', 'aws_iid'],
      instanceId: 'i-0123456789abcdef0',
      account: '111122223333',
      region: 'eu-west-1',
      iamRole: 'arn:aws:iam::111122223333:role/buildkite-agent',
      jkt: 'NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs',
      attestedAt: T,
      expiresAt: T + HOUR,
      ...over,
    });

    it(
      'a put attestation is read back whole by another process until it expires, then not at all',
      withStores(async (a, b) => {
        const full = attestation('agent-1');
        await a.attestations.put(full);
        expect(await b.attestations.get('agent-1', T)).toEqual(full);
        expect(await b.attestations.get('agent-1', T + HOUR - 1)).toEqual(full);
        // Expired at its expiry instant: the gate must not accept a stale record.
        expect(await b.attestations.get('agent-1', T + HOUR)).toBeUndefined();
        // Only the exact agent id: no prefix or case folding.
        expect(await b.attestations.get('agent-', T)).toBeUndefined();
        expect(await b.attestations.get('AGENT-1', T)).toBeUndefined();
        expect(await b.attestations.get('agent-2', T)).toBeUndefined();
      }),
    );

    it(
      'absent facts stay absent, and methods are stored sorted without duplicates',
      withStores(async (a, b) => {
        const bare: AgentAttestationRecord = { agentId: 'agent-bare', pool: 'linux/ci', jobId: 'job-1', methods: ['aws_iid', 'aws_iam', 'aws_iid'], attestedAt: T, expiresAt: T + HOUR };
        await a.attestations.put(bare);
        const got = await b.attestations.get('agent-bare', T);
        expect(got).toEqual({ ...bare, methods: ['aws_iam', 'aws_iid'] });
        expect(Object.keys(got!).sort()).toEqual(['agentId', 'attestedAt', 'expiresAt', 'jobId', 'methods', 'pool']);
      }),
    );

    it(
      'a later put replaces the agent’s record: a re-attestation with fewer methods or another pool does not keep the old ones',
      withStores(async (a, b) => {
        await a.attestations.put(attestation('agent-1'));
        const { jkt: _jkt, instanceId: _instance, ...rest } = attestation('agent-1');
        const again = { ...rest, pool: 'linux/ci', jobId: 'job-2', methods: ['aws_iam'], attestedAt: T + 10, expiresAt: T + 2 * HOUR };
        await b.attestations.put(again);
        expect(await a.attestations.get('agent-1', T + HOUR + 1)).toEqual(again);
        expect(await a.attestations.list({ since: 0 })).toEqual([again]);
      }),
    );

    it(
      'list gives attestations made since a time, optionally of one exact pool, oldest first, expired ones included',
      withStores(async (a, b) => {
        await a.attestations.put(attestation('agent-c', { attestedAt: T + 3, expiresAt: T + 4 }));
        await b.attestations.put(attestation('agent-a', { attestedAt: T + 1, pool: 'linux/ci' }));
        await a.attestations.put(attestation('agent-b', { attestedAt: T + 2 }));
        await b.attestations.put(attestation('agent-old', { attestedAt: T - 1 }));
        const ids = (rs: AgentAttestationRecord[]) => rs.map((r) => r.agentId);
        expect(ids(await a.attestations.list({ since: T }))).toEqual(['agent-a', 'agent-b', 'agent-c']);
        expect(ids(await b.attestations.list({ since: T, pool: 'linux/deploy' }))).toEqual(['agent-b', 'agent-c']);
        expect(ids(await b.attestations.list({ since: 0, pool: 'linux/ci' }))).toEqual(['agent-a']);
        // The pool is matched exactly, never as a pattern.
        expect(await b.attestations.list({ since: 0, pool: 'linux/%' })).toEqual([]);
        expect(await b.attestations.list({ since: 0, pool: 'linux/_i' })).toEqual([]);
      }),
    );

    it(
      'bindInstanceKey binds an instance’s first key; a later key for it gets the first binding back, other instances are independent',
      withStores(async (a, b) => {
        const first = { instanceId: 'i-1', jkt: 'key-one', boundAt: T };
        expect(await a.attestations.bindInstanceKey(first)).toEqual(first);
        // A copied identity document presented with another key: the first binding stands.
        expect(await b.attestations.bindInstanceKey({ instanceId: 'i-1', jkt: 'key-two', boundAt: T + 5 })).toEqual(first);
        expect(await a.attestations.bindInstanceKey({ instanceId: 'i-1', jkt: 'key-one', boundAt: T + 9 })).toEqual(first);
        expect(await b.attestations.bindInstanceKey({ instanceId: 'i-2', jkt: 'key-two', boundAt: T + 6 })).toEqual({ instanceId: 'i-2', jkt: 'key-two', boundAt: T + 6 });
      }),
    );

    it(
      'first binds racing from two processes with different keys all agree on one key',
      withStores(async (a, b) => {
        const tries = Array.from({ length: 16 }, (_, i) => (i % 2 ? a : b).attestations.bindInstanceKey({ instanceId: 'i-race', jkt: `key-${i}`, boundAt: T + i }));
        const results = await Promise.all(tries);
        const winners = new Set(results.map((r) => r.jkt));
        expect(winners.size).toBe(1);
        const winner = results[0]!;
        expect(results.every((r) => r.jkt === winner.jkt && r.boundAt === winner.boundAt && r.instanceId === 'i-race')).toBe(true);
        // The winner's own bind time, so the key is one a racer really presented.
        expect(winner.boundAt - T).toBe(Number(winner.jkt.slice('key-'.length)));
        expect(await a.attestations.bindInstanceKey({ instanceId: 'i-race', jkt: 'late', boundAt: T + 99 })).toEqual(winner);
      }),
    );

    it(
      'purgeExpired deletes attestations expired more than the kept period ago and keeps the rest and every instance key',
      withStores(async (a, b) => {
        const now = T + 100 * 86_400_000;
        await a.attestations.put(attestation('agent-gone', { expiresAt: now - ATTESTATION_KEPT_MS }));
        await a.attestations.put(attestation('agent-kept', { expiresAt: now - ATTESTATION_KEPT_MS + 1 }));
        await a.attestations.put(attestation('agent-live', { expiresAt: now + HOUR }));
        await a.attestations.bindInstanceKey({ instanceId: 'i-old', jkt: 'key', boundAt: T - 365 * 86_400_000 });
        await b.purgeExpired(now);
        expect((await a.attestations.list({ since: 0 })).map((r) => r.agentId).sort()).toEqual(['agent-kept', 'agent-live']);
        expect(await a.attestations.get('agent-live', now)).toMatchObject({ agentId: 'agent-live' });
        expect(await a.attestations.bindInstanceKey({ instanceId: 'i-old', jkt: 'other', boundAt: now })).toEqual({ instanceId: 'i-old', jkt: 'key', boundAt: T - 365 * 86_400_000 });
      }),
    );
  });
}
