import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createProof, loadOrCreateHostKey, HostKeyError } from '../../src/dpop/host-key.js';
import { comparableUri } from '../../src/dpop/htu.js';
import { DpopVerifier } from '../../src/dpop/proof-verifier.js';
import type { ReplayStore } from '../../src/store/repositories/replay.js';

/** The host key file: created private and atomically, never clobbered, refused when others could read or swap it. */
let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'port-dpop-key-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('loadOrCreateHostKey', () => {
  it('creates an ES256 key file 0600 in a new 0700 directory, and loads the same key again', async () => {
    const path = join(dir, 'new', 'sub', 'dpop.jwk');
    const key = await loadOrCreateHostKey(path);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, 'new', 'sub')).mode & 0o777).toBe(0o700);
    const jwk = JSON.parse(readFileSync(path, 'utf8'));
    expect(jwk).toMatchObject({ kty: 'EC', crv: 'P-256', alg: 'ES256' });
    expect(typeof jwk.d).toBe('string');
    expect(key.publicJwk).toEqual({ kty: 'EC', crv: 'P-256', x: jwk.x, y: jwk.y });
    expect(key.jkt).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect((await loadOrCreateHostKey(path)).jkt).toBe(key.jkt);
  });

  it('gives processes racing to create it one key, and leaves no temporary file', async () => {
    const sub = join(dir, 'race');
    const keys = await Promise.all(Array.from({ length: 8 }, () => loadOrCreateHostKey(join(sub, 'dpop.jwk'))));
    expect(new Set(keys.map((k) => k.jkt)).size).toBe(1);
    const { readdirSync } = await import('node:fs');
    expect(readdirSync(sub)).toEqual(['dpop.jwk']);
  });

  it('refuses a key file readable by group or others, and one that is a symbolic link', async () => {
    const path = join(dir, 'perm', 'dpop.jwk');
    await loadOrCreateHostKey(path);
    chmodSync(path, 0o640);
    await expect(loadOrCreateHostKey(path)).rejects.toThrow(/can be read or written by group or others \(mode 640\); run chmod 600/);
    chmodSync(path, 0o604);
    await expect(loadOrCreateHostKey(path)).rejects.toBeInstanceOf(HostKeyError);
    chmodSync(path, 0o600);
    const link = join(dir, 'perm', 'link.jwk');
    symlinkSync(path, link);
    await expect(loadOrCreateHostKey(link)).rejects.toThrow(/symbolic link/);
  });

  it('refuses a directory others can write, and a file another user owns', async () => {
    const open = join(dir, 'open');
    mkdirSync(open, { mode: 0o700 });
    chmodSync(open, 0o777);
    await expect(loadOrCreateHostKey(join(open, 'dpop.jwk'))).rejects.toThrow(/writable by others or not owned by this user/);
    if (process.getuid?.() === 0) {
      const path = join(dir, 'owned', 'dpop.jwk');
      await loadOrCreateHostKey(path);
      chownSync(path, 65534, 65534);
      await expect(loadOrCreateHostKey(path)).rejects.toThrow(/not owned by this user/);
    }
  });

  it('refuses a file that is not a P-256 private key, and never overwrites it', async () => {
    const sub = join(dir, 'junk');
    mkdirSync(sub, { mode: 0o700 });
    const path = join(sub, 'dpop.jwk');
    writeFileSync(path, '{"kty":"EC","crv":"P-256","x":"abc","y":"def"}', { mode: 0o600 });
    await expect(loadOrCreateHostKey(path)).rejects.toThrow(/not an ES256 \(P-256\) private key/);
    writeFileSync(path, 'not json', { mode: 0o600 });
    await expect(loadOrCreateHostKey(path)).rejects.toThrow(/not a JSON Web Key/);
    expect(readFileSync(path, 'utf8')).toBe('not json');
  });
});

/** A replay store in memory: enough for the verifier's own rules (the server tests use the real store). */
function memoryReplay(): ReplayStore {
  const seen = new Map<string, number>();
  return {
    async consume(k, expiresAt) {
      const prev = seen.get(k);
      if (prev !== undefined && prev > Date.now()) return false;
      seen.set(k, expiresAt);
      return true;
    },
    async consumeAndLog() {
      throw new Error('not used');
    },
  };
}

describe('createProof and DpopVerifier', () => {
  it("verify a proof made with a key file's key, once", async () => {
    const key = await loadOrCreateHostKey(join(dir, 'proof', 'dpop.jwk'));
    const verifier = new DpopVerifier({ maxAge: 60, replay: memoryReplay() });
    const proof = await createProof(key, { method: 'PUT', url: 'https://port.example.com/relay/npm/pkg?x=1#f', accessToken: 'tok.en.x' });
    const req = { method: 'PUT', url: 'https://port.example.com/relay/npm/pkg', accessToken: 'tok.en.x', jkt: key.jkt };
    await expect(verifier.verify(proof, req)).resolves.toMatchObject({ jkt: key.jkt });
    await expect(verifier.verify(proof, req)).rejects.toMatchObject({ code: 'invalid_dpop_proof', check: 'replayed', status: 400 });
  });

  it('accept an iat up to max_age away either way, at the edge', async () => {
    const key = await loadOrCreateHostKey(join(dir, 'edge', 'dpop.jwk'));
    const verifier = new DpopVerifier({ maxAge: 30, replay: memoryReplay() });
    const now = 1_800_000_000_000;
    const req = { method: 'GET', url: 'https://p.example/relay/a' };
    for (const [offset, ok] of [[-30, true], [30, true], [-31, false], [31, false]] as const) {
      const proof = await createProof(key, { method: 'GET', url: req.url, now: now + offset * 1000 });
      if (ok) await expect(verifier.verify(proof, req, now)).resolves.toBeDefined();
      else await expect(verifier.verify(proof, req, now)).rejects.toMatchObject({ check: offset < 0 ? 'iat_stale' : 'iat_future' });
    }
  });
});

describe('comparableUri (RFC 3986 §6.2.2–6.2.3)', () => {
  it('normalises case, the default port, percent-encoding and dot segments; refuses what is not an http(s) URI', () => {
    expect(comparableUri('HTTPS://Port.Example.COM:443/relay/%7ea/%2f/./b', true)).toBe('https://port.example.com/relay/~a/%2F/b');
    expect(comparableUri('http://port.example.com:80', true)).toBe('http://port.example.com/');
    expect(comparableUri('https://port.example.com:8443/x', true)).toBe('https://port.example.com:8443/x');
    for (const bad of ['ftp://port.example.com/x', 'https://u:p@port.example.com/x', 'https://port.example.com/x?y', 'https://port.example.com/x#y', 'https://port.example.com/ x', '/x']) {
      expect(comparableUri(bad, true), bad).toBeUndefined();
    }
  });
});
