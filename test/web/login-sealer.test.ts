/** The sealing of sign-ins in progress (src/web/login-cookie.ts): what opens, what doesn't. */
import { describe, expect, it } from 'vitest';
import { deriveKeyEncryptionKey } from '../../src/issuer/key-wrap.js';
import { loginCookieKey, LoginSealer, type LoginInProgress } from '../../src/web/login-cookie.js';

const CALLBACK = 'https://port.acme.test/auth/callback';
const login = (expiresAt: number): LoginInProgress => ({
  state: 's'.repeat(43),
  nonce: 'n'.repeat(43),
  verifier: 'v'.repeat(43),
  returnTo: '/approvals/abc?tab=1',
  expiresAt,
});

describe('LoginSealer', () => {
  it('opens what it sealed until it expires; every value is different', () => {
    const sealer = new LoginSealer(loginCookieKey(undefined), CALLBACK);
    const a = sealer.seal(login(2_000));
    expect(a).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(sealer.open(a, 1_999)).toEqual(login(2_000));
    expect(sealer.open(a, 2_000)).toBeUndefined();
    expect(sealer.seal(login(2_000))).not.toBe(a);
  });

  it('the same key_encryption_key opens across processes; another secret, another callback URL or a random key do not', () => {
    const value = new LoginSealer(loginCookieKey('kek-one'), CALLBACK).seal(login(2_000));
    expect(new LoginSealer(loginCookieKey('kek-one'), CALLBACK).open(value, 1_000)).toEqual(login(2_000));
    expect(new LoginSealer(loginCookieKey('kek-two'), CALLBACK).open(value, 1_000)).toBeUndefined();
    expect(new LoginSealer(loginCookieKey('kek-one'), 'https://staging.acme.test/auth/callback').open(value, 1_000)).toBeUndefined();
    expect(new LoginSealer(loginCookieKey(undefined), CALLBACK).open(value, 1_000)).toBeUndefined();
  });

  it('its key is not the signing-key wrap key derived from the same secret', () => {
    expect(loginCookieKey('kek-one').equals(deriveKeyEncryptionKey('kek-one'))).toBe(false);
    expect(loginCookieKey('kek-one').equals(loginCookieKey('kek-one'))).toBe(true);
  });

  it('refuses empty, oversized, non-base64url and truncated values', () => {
    const sealer = new LoginSealer(loginCookieKey(undefined), CALLBACK);
    const value = sealer.seal(login(2_000));
    for (const bad of [undefined, '', 'A', 'A'.repeat(3801), `${value}=`, value.slice(0, 30), value.slice(0, -1), `${value.slice(0, -3)}${value.at(-3) === 'A' ? 'B' : 'A'}${value.slice(-2)}`]) {
      expect(sealer.open(bad, 1_000)).toBeUndefined();
    }
  });
});
