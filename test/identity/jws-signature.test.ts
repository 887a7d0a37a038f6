/**
 * The node:crypto JWS signatures (src/identity/jws-signature.ts) against jose, which stays
 * the reference: for every algorithm Port signs or accepts, jose verifies what node:crypto
 * signs and node:crypto verifies what jose signs (RFC 7518 §3); everything that is not
 * exactly a signature of the input under the key is refused.
 */
import { createPrivateKey, generateKeyPairSync, KeyObject, sign, type webcrypto } from 'node:crypto';
import { CompactSign, compactVerify, exportJWK, generateKeyPair, importJWK } from 'jose';
import { describe, expect, it } from 'vitest';
import { signJws, verifyJwsSignature, type JwsAlgorithm } from '../../src/identity/jws-signature.js';

const ALGS: JwsAlgorithm[] = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'];
const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');

/** A key pair as Port holds it: imported by jose for the algorithm, then handed to node:crypto. */
async function keyPair(alg: JwsAlgorithm) {
  const pair = await generateKeyPair(alg, { extractable: true, ...(alg === 'EdDSA' ? { crv: 'Ed25519' } : {}) });
  const [publicJwk, privateJwk] = [await exportJWK(pair.publicKey), await exportJWK(pair.privateKey)];
  const toKeyObject = async (jwk: object) => KeyObject.from((await importJWK(jwk, alg)) as webcrypto.CryptoKey);
  return { jose: pair, publicKey: await toKeyObject(publicJwk), privateKey: await toKeyObject(privateJwk) };
}

describe('JWS signatures with node:crypto', () => {
  for (const alg of ALGS) {
    it(`${alg}: jose verifies node:crypto's signature, node:crypto verifies jose's, and a changed byte fails both`, async () => {
      const keys = await keyPair(alg);
      const input = `${b64({ alg, kid: 'k' })}.${b64({ sub: 'job', n: 1 })}`;
      const ours = `${input}.${signJws(alg, keys.privateKey, input)}`;
      const verified = await compactVerify(ours, keys.jose.publicKey, { algorithms: [alg] });
      expect(new TextDecoder().decode(verified.payload)).toBe(JSON.stringify({ sub: 'job', n: 1 }));

      const theirs = await new CompactSign(new TextEncoder().encode(JSON.stringify({ sub: 'job', n: 1 })))
        .setProtectedHeader({ alg, kid: 'k' })
        .sign(keys.jose.privateKey);
      const [h, p, s] = theirs.split('.') as [string, string, string];
      expect(verifyJwsSignature(alg, keys.publicKey, `${h}.${p}`, s)).toBe(true);
      // Another payload under the same signature.
      expect(verifyJwsSignature(alg, keys.publicKey, `${h}.${b64({ sub: 'job', n: 2 })}`, s)).toBe(false);
      // One bit of the signature flipped.
      const sig = Buffer.from(s, 'base64url');
      sig[sig.length >> 1]! ^= 1;
      expect(verifyJwsSignature(alg, keys.publicKey, `${h}.${p}`, sig.toString('base64url'))).toBe(false);
      await expect(compactVerify(`${h}.${p}.${sig.toString('base64url')}`, keys.jose.publicKey)).rejects.toThrow();
    });
  }

  it('refuses a signature of the wrong length: truncated, extended, empty', async () => {
    for (const alg of ['RS256', 'ES256', 'EdDSA'] as const) {
      const keys = await keyPair(alg);
      const input = `${b64({ alg })}.${b64({ a: 1 })}`;
      const sig = Buffer.from(signJws(alg, keys.privateKey, input), 'base64url');
      expect(verifyJwsSignature(alg, keys.publicKey, input, sig.toString('base64url'))).toBe(true);
      for (const wrong of [sig.subarray(1), sig.subarray(0, -1), Buffer.concat([sig, Buffer.from([0])]), Buffer.concat([Buffer.from([0]), sig]), Buffer.alloc(0)]) {
        expect(verifyJwsSignature(alg, keys.publicKey, input, wrong.toString('base64url'))).toBe(false);
      }
    }
  });

  it('ES256: refuses a DER-encoded signature of the same input (RFC 7518 §3.4 wants R ‖ S)', async () => {
    const keys = await keyPair('ES256');
    const input = `${b64({ alg: 'ES256' })}.${b64({ a: 1 })}`;
    const der = sign('sha256', Buffer.from(input), { key: keys.privateKey, dsaEncoding: 'der' });
    expect(der.length).not.toBe(64);
    expect(verifyJwsSignature('ES256', keys.publicKey, input, der.toString('base64url'))).toBe(false);
    const p1363 = sign('sha256', Buffer.from(input), { key: keys.privateKey, dsaEncoding: 'ieee-p1363' });
    expect(verifyJwsSignature('ES256', keys.publicKey, input, p1363.toString('base64url'))).toBe(true);
  });

  it('refuses a non-canonical base64url signature (extra character, padding, standard alphabet)', async () => {
    const keys = await keyPair('ES256');
    const input = `${b64({ alg: 'ES256' })}.${b64({ a: 1 })}`;
    const s = signJws('ES256', keys.privateKey, input);
    expect(verifyJwsSignature('ES256', keys.publicKey, input, s)).toBe(true);
    const std = Buffer.from(s, 'base64url').toString('base64');
    // 64 bytes take 86 characters, the last carrying 4 unused bits: flipping one spells the same bytes.
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const sameBytes = s.slice(0, -1) + alphabet[alphabet.indexOf(s.at(-1)!) ^ 1];
    expect(Buffer.from(sameBytes, 'base64url').equals(Buffer.from(s, 'base64url'))).toBe(true);
    for (const variant of [`${s}A`, `${s}=`, std, sameBytes]) {
      if (variant === s) continue;
      expect(verifyJwsSignature('ES256', keys.publicKey, input, variant)).toBe(false);
    }
  });

  it('refuses a key that does not fit the algorithm: another type, another curve, a private key, RSA under 2048 bits', async () => {
    const es256 = await keyPair('ES256');
    const es384 = await keyPair('ES384');
    const rs = await keyPair('RS256');
    const input = `${b64({ alg: 'ES256' })}.${b64({ a: 1 })}`;
    const s = signJws('ES256', es256.privateKey, input);
    expect(verifyJwsSignature('ES384', es384.publicKey, input, s)).toBe(false);
    expect(verifyJwsSignature('RS256', rs.publicKey, input, s)).toBe(false);
    expect(verifyJwsSignature('ES256', es384.publicKey, input, s)).toBe(false);
    // A private key verifies nothing (jose wants a public key for verify, too).
    expect(verifyJwsSignature('ES256', es256.privateKey, input, s)).toBe(false);
    expect(() => signJws('ES256', es256.publicKey, input)).toThrow(TypeError);
    expect(() => signJws('ES384', es256.privateKey, input)).toThrow(TypeError);

    const small = generateKeyPairSync('rsa', { modulusLength: 1024 });
    const rsInput = `${b64({ alg: 'RS256' })}.${b64({ a: 1 })}`;
    const rsSig = sign('sha256', Buffer.from(rsInput), small.privateKey).toString('base64url');
    expect(verifyJwsSignature('RS256', small.publicKey, rsInput, rsSig)).toBe(false);
    expect(() => signJws('RS256', createPrivateKey(small.privateKey.export({ format: 'pem', type: 'pkcs8' })), rsInput)).toThrow(/2048/);
  });

  it('refuses signing input that is not ASCII', async () => {
    const keys = await keyPair('EdDSA');
    const input = `${b64({ alg: 'EdDSA' })}.é`;
    const s = sign(null, Buffer.from(input, 'latin1'), keys.privateKey).toString('base64url');
    expect(verifyJwsSignature('EdDSA', keys.publicKey, input, s)).toBe(false);
    expect(() => signJws('EdDSA', keys.privateKey, input)).toThrow(TypeError);
  });
});
