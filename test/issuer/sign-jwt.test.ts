/**
 * signJwt against jose's SignJWT: Ed25519 signatures are deterministic (RFC 8032 §5.1.6), so
 * for an EdDSA key the two must produce the same token, byte for byte, whatever the claims
 * hold — the header's and claims' base64url is Node's native encoder here, jose's own there.
 */
import { generateKeyPairSync } from 'node:crypto';
import { SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import { signJwt } from '../../src/issuer/sign-jwt.js';

const { privateKey } = generateKeyPairSync('ed25519');

/** A deterministic generator (mulberry32), so a failure names a reproducible case. */
function random(seed: number) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Strings of ASCII, control characters, 2- and 3-byte UTF-8, astral characters and lone surrogates. */
function text(rnd: () => number): string {
  const pools = [[0x20, 0x7e], [0x00, 0x1f], [0x80, 0x7ff], [0x800, 0xd7ff], [0xe000, 0xfffd], [0xd800, 0xdfff]] as const;
  let s = '';
  const n = Math.floor(rnd() * 24);
  for (let i = 0; i < n; i++) {
    if (rnd() < 0.1) {
      s += String.fromCodePoint(0x10000 + Math.floor(rnd() * 0xfffff));
      continue;
    }
    const [lo, hi] = pools[Math.floor(rnd() * pools.length)]!;
    s += String.fromCharCode(lo + Math.floor(rnd() * (hi - lo + 1)));
  }
  return s;
}

describe('signJwt', () => {
  it("makes jose's token byte for byte, over 300 generated claim sets and headers", async () => {
    const rnd = random(13);
    for (let i = 0; i < 300; i++) {
      const claims = {
        sub: text(rnd),
        iat: 1_700_000_000 + i,
        exp: 1_700_000_600 + i,
        branch: text(rnd),
        nested: { [text(rnd)]: [text(rnd), i, rnd() < 0.5, null] },
      };
      // A handful of kids, so the encoded-header cache is hit and missed.
      const header = { alg: 'EdDSA' as const, kid: `k${i % 5}${i % 7 === 0 ? text(rnd) : ''}`, typ: i % 2 ? 'JWT' : 'port+jwt' };
      const ours = signJwt(header, claims, privateKey);
      const jose = await new SignJWT(claims).setProtectedHeader(header).sign(privateKey);
      expect(ours, `case ${i}`).toBe(jose);
    }
  });

  it('keeps the header in the member order it was given, as jose does', async () => {
    const header = { typ: 'JWT', kid: 'k', alg: 'EdDSA' as const };
    const ours = signJwt(header, { sub: 'x' }, privateKey);
    expect(ours).toBe(await new SignJWT({ sub: 'x' }).setProtectedHeader(header).sign(privateKey));
    expect(Buffer.from(ours.split('.')[0]!, 'base64url').toString()).toBe('{"typ":"JWT","kid":"k","alg":"EdDSA"}');
  });

  it('refuses a non-finite iat, nbf or exp, as jose does', () => {
    for (const claim of ['iat', 'nbf', 'exp']) {
      expect(() => signJwt({ alg: 'EdDSA', kid: 'k', typ: 'JWT' }, { [claim]: Number.NaN }, privateKey)).toThrow(new TypeError(`"${claim}" claim must be a finite number`));
    }
  });
});
