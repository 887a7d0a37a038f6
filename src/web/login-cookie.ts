/**
 * A sign-in in progress (OIDC state, nonce, PKCE verifier, where to return), sealed into
 * the browser's own login cookie (`__Host-port_login` behind an https public URL, else
 * `port_login`: sso.ts `cookieNames`) instead of held in Port's memory.
 *
 * Why a sealed cookie and not a server-side table: a table of sign-ins in flight must be
 * bounded, and anyone can fill it with `GET /login` and evict real people's sign-ins
 * (an unauthenticated flood needs no credentials). Per-client rate limiting would not
 * close that: clients are cheap to multiply (addresses, proxies), and one NAT holds a
 * whole office. With the state in the cookie, Port keeps nothing per sign-in, so a flood
 * costs the flooder their own cookies and nobody else's.
 *
 * The cookie is AES-256-GCM (NIST SP 800-38D) under a key derived with HKDF-SHA256
 * (RFC 5869) from `issuer.key_encryption_key` with its own `info` (so it is independent
 * of the signing-key wrap key, src/issuer/key-wrap.ts), or a random key per process when
 * that secret is unset: then sign-ins in progress don't survive a restart and do not move
 * between replicas. The associated data names the cookie and Port's callback URL, so a
 * sealed value is good for nothing else. Confidentiality keeps the PKCE verifier and
 * nonce out of reach of anything that can read the cookie but not the key (RFC 7636 §7.1
 * wants the verifier secret); integrity stops a browser from choosing its own state.
 *
 * One use: Port clears the cookie at the callback, and the authorization code it pairs
 * with is itself one-use at the IdP (RFC 6749 §4.1.2) and bound to this verifier by PKCE
 * (RFC 7636 §4.6), so a replayed callback is refused by the IdP even if the cookie is
 * sent again (sso.ts also remembers finished sign-ins for a while, as defence in depth).
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';

export interface LoginInProgress {
  state: string;
  nonce: string;
  verifier: string;
  /** A same-origin relative path, already checked. */
  returnTo: string;
  /** Epoch ms; the sealed value is worthless after it, whatever the cookie's Max-Age. */
  expiresAt: number;
}

const IV_BYTES = 12;
const TAG_BYTES = 16;
/** Browsers keep cookies up to 4096 bytes (RFC 6265 §6.1); a longer value is not Port's. */
const MAX_SEALED_CHARS = 3800;
const BASE64URL = /^[A-Za-z0-9_-]+$/;
const TOKEN = /^[A-Za-z0-9_-]{16,128}$/;

export function loginCookieKey(keyEncryptionKey: string | undefined): Buffer {
  if (keyEncryptionKey === undefined) return randomBytes(32);
  return Buffer.from(hkdfSync('sha256', keyEncryptionKey, 'port', 'port sso login cookie v1', 32));
}

export class LoginSealer {
  private readonly aad: Buffer;

  /** `key`: 32 bytes (`loginCookieKey`); `redirectUri`: Port's callback URL, bound into every value. */
  constructor(
    private readonly key: Buffer,
    redirectUri: string,
  ) {
    if (key.length !== 32) throw new Error('the login cookie key must be 32 bytes');
    this.aad = Buffer.from(`port_login v1 ${redirectUri}`);
  }

  /** The cookie value: base64url(iv ‖ ciphertext ‖ tag). */
  seal(login: LoginInProgress): string {
    const plain = JSON.stringify({ s: login.state, n: login.nonce, v: login.verifier, r: login.returnTo, e: login.expiresAt });
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv).setAAD(this.aad);
    const sealed = Buffer.concat([iv, cipher.update(plain, 'utf8'), cipher.final(), cipher.getAuthTag()]).toString('base64url');
    if (sealed.length > MAX_SEALED_CHARS) throw new Error('the sign-in state does not fit in a cookie');
    return sealed;
  }

  /** The sign-in, or undefined: malformed, tampered, sealed under another key or for another Port, or expired. */
  open(value: string | undefined, now: number): LoginInProgress | undefined {
    if (!value || value.length > MAX_SEALED_CHARS || !BASE64URL.test(value)) return undefined;
    const bytes = Buffer.from(value, 'base64url');
    if (bytes.length <= IV_BYTES + TAG_BYTES) return undefined;
    let plain: string;
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.key, bytes.subarray(0, IV_BYTES)).setAAD(this.aad);
      decipher.setAuthTag(bytes.subarray(bytes.length - TAG_BYTES));
      plain = Buffer.concat([decipher.update(bytes.subarray(IV_BYTES, bytes.length - TAG_BYTES)), decipher.final()]).toString('utf8');
    } catch {
      return undefined;
    }
    const o = JSON.parse(plain) as Record<string, unknown>;
    const { s, n, v, r, e } = o;
    if (typeof s !== 'string' || typeof n !== 'string' || typeof v !== 'string' || typeof r !== 'string' || typeof e !== 'number') return undefined;
    if (!TOKEN.test(s) || !TOKEN.test(n) || !TOKEN.test(v) || !r.startsWith('/')) return undefined;
    if (e <= now) return undefined;
    return { state: s, nonce: n, verifier: v, returnTo: r, expiresAt: e };
  }
}
