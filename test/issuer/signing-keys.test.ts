import { jwtVerify, createLocalJWKSet } from 'jose';
import { describe, expect, it } from 'vitest';
import { sqliteStorePerTest } from '../helpers/temp-sqlite-store.js';
import { PortTokenIssuer } from '../../src/issuer/port-token.js';
import { deriveKeyEncryptionKey } from '../../src/issuer/key-wrap.js';
import { SigningKeys } from '../../src/issuer/signing-keys.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import type { JobIdentity } from '../../src/identity/job-identity.js';

const identity: JobIdentity = {
  subject: 's', organizationSlug: 'acme', pipelineSlug: 'deploy', buildNumber: 1, branch: 'main', tag: null, commit: 'a'.repeat(40),
  stepKey: null, jobId: 'job-1', agentId: 'agent-1', buildSource: 'ui', runnerEnvironment: 'self-hosted', agentTags: {}, issuedAt: 0, expiresAt: 0,
};

const fresh = sqliteStorePerTest('port-keys-');

describe('signing keys', () => {
  for (const algorithm of ['ES256', 'EdDSA'] as const) {
    it(`rotates ${algorithm} keys on schedule and keeps the old key published for the overlap`, async () => {
      const t0 = Date.now();
      const keys = await SigningKeys.open(fresh.store, { algorithm, rotation: 3600, overlap: 900 }, t0);
      const issuer = new PortTokenIssuer(keys, 'https://port.test');
      const first = keys.signer().kid;
      const old = await issuer.mint(identity, { audience: 'a', scopes: [], ttl: 900, now: t0 });

      expect(await keys.rotateIfDue(t0 + 1000)).toBe(false);
      expect(await keys.rotateIfDue(t0 + 3600_000)).toBe(true);
      const second = keys.signer().kid;
      expect(second).not.toBe(first);
      // Both keys are published while the overlap lasts: the old token still verifies.
      expect(keys.jwks().keys.map((k) => k.kid).sort()).toEqual([first, second].sort());
      await expect(jwtVerify(old.token, createLocalJWKSet(keys.jwks()), { currentDate: new Date(t0 + 100_000) })).resolves.toBeTruthy();
      // After the overlap the old key leaves the JWKS but stays in the store (audit checkpoints need it).
      await keys.rotateIfDue(t0 + 3600_000 + 901_000);
      expect(keys.jwks().keys.map((k) => k.kid)).toEqual([second]);
      expect(keys.allPublicKeys().has(first)).toBe(true);
      // Private material is never published.
      for (const k of keys.jwks().keys) expect(k).not.toHaveProperty('d');
    });
  }

  it('seals private keys at rest with the key encryption key, and refuses to start without the right one', async () => {
    const kek = deriveKeyEncryptionKey('correct horse battery staple');
    const keys = await SigningKeys.open(fresh.store, { algorithm: 'ES256', rotation: 3600, overlap: 900, keyEncryptionKey: kek });
    const [stored] = await fresh.store.keys.list();
    expect(stored!.privateKey.startsWith('port-kw1.')).toBe(true);
    expect(stored!.privateKey).not.toContain('"d"');
    const reopened = await SigningKeys.open(fresh.store, { algorithm: 'ES256', rotation: 3600, overlap: 900, keyEncryptionKey: kek });
    expect(reopened.signer().kid).toBe(keys.signer().kid);
    await expect(SigningKeys.open(fresh.store, { algorithm: 'ES256', rotation: 3600, overlap: 900 })).rejects.toThrow(/is encrypted in the store; set issuer\.key_encryption_key/);
    await expect(
      SigningKeys.open(fresh.store, { algorithm: 'ES256', rotation: 3600, overlap: 900, keyEncryptionKey: deriveKeyEncryptionKey('wrong') }),
    ).rejects.toMatchObject({ code: 'signing_key_locked' });
  });

  it('a first key signs for a process whose clock reads up to a minute earlier; its successor signs only once the first retires', async () => {
    const t0 = Date.now();
    const options = { algorithm: 'ES256' as const, rotation: 3600, overlap: 900, prepublish: 300 };
    const keys = await SigningKeys.open(fresh.store, options, t0);
    const first = keys.signer().kid;
    // Another process on the same file whose clock reads 59 s earlier finds that key signing, and makes none.
    const other = SqliteStore.open(fresh.store.path);
    try {
      const behind = await SigningKeys.open(other, options, t0 - 59_000);
      expect(behind.signer().kid).toBe(first);
      expect((await fresh.store.keys.list()).map((k) => k.kid)).toEqual([first]);
      behind.close();
    } finally {
      await other.close();
    }
    // The first key still signs for the whole rotation after it was made: its successor is stored
    // `prepublish` before that, and signs from then, not before.
    expect(await keys.rotateIfDue(t0 + 3300_000 - 1)).toBe(false);
    expect(await keys.rotateIfDue(t0 + 3300_000)).toBe(true);
    const successor = (await fresh.store.keys.list()).find((k) => k.kid !== first)!;
    expect(successor.createdAt).toBe(t0 + 3600_000);
    await keys.tick(t0 + 3600_000 - 1);
    expect(keys.signer().kid).toBe(first);
    await keys.tick(t0 + 3600_000);
    expect(keys.signer().kid).toBe(successor.kid);
    keys.close();
  });

  it('a restarted Port reuses the stored key instead of making a new one', async () => {
    const a = await SigningKeys.open(fresh.store, { algorithm: 'ES256', rotation: 3600, overlap: 900 });
    const b = await SigningKeys.open(fresh.store, { algorithm: 'ES256', rotation: 3600, overlap: 900 });
    expect(b.signer().kid).toBe(a.signer().kid);
  });
});
