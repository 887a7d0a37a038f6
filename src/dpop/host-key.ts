import { randomBytes, randomUUID } from 'node:crypto';
import { constants, promises as fs } from 'node:fs';
import { dirname, join, basename } from 'node:path';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK, SignJWT, type JWK } from 'jose';
import { PortError } from '../errors.js';
import { DPOP_TYP, accessTokenHash } from './proof-verifier.js';

/** A host's DPoP key: what its Port tokens are bound to (RFC 9449 §6.1 `cnf.jkt`). */
export interface HostKey {
  readonly alg: 'ES256';
  /** RFC 7638 SHA-256 thumbprint of the public key. */
  readonly jkt: string;
  /** The public key, as every proof's `jwk` header carries it. */
  readonly publicJwk: Readonly<JWK>;
  /** The private key; never leaves this process except in its key file. */
  readonly privateKey: CryptoKey;
}

/** The host key file can't be used; the message names the path and the fix, never the key. */
export class HostKeyError extends PortError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('host_key_invalid', message, 500, options);
  }
}

/**
 * Loads the host's DPoP key from `path`, creating it on first use: an ES256 key pair
 * written as a private JWK, mode 0600, in a directory created 0700. The file is written
 * under a temporary name and linked into place, so a reader never sees half a key and two
 * processes starting at once end up with one key (the second link fails and that process
 * loads the winner's) — an existing key is never overwritten. A key file readable or
 * writable by group or others, not a regular file, or not owned by the current user is
 * refused: the key is the only thing that makes a copied token useless elsewhere.
 */
export async function loadOrCreateHostKey(path: string): Promise<HostKey> {
  const dir = dirname(path);
  await ensurePrivateDir(dir);
  const existing = await readKeyFile(path);
  if (existing !== undefined) return hostKeyFrom(existing, path);

  const { privateKey } = await generateKeyPair('ES256', { extractable: true });
  const jwk = await exportJWK(privateKey);
  const text = `${JSON.stringify({ ...jwk, alg: 'ES256', use: 'sig' })}\n`;
  const tmp = join(dir, `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  const handle = await fs.open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | (constants.O_NOFOLLOW ?? 0), 0o600);
  try {
    await handle.writeFile(text);
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    // link(2) fails with EEXIST rather than replace: the no-clobber, atomic create.
    await fs.link(tmp, path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new HostKeyError(`Cannot create the host key file ${path}: ${(err as Error).message}`, { cause: err });
  } finally {
    await fs.unlink(tmp).catch(() => undefined);
  }
  const written = await readKeyFile(path);
  if (written === undefined) throw new HostKeyError(`The host key file ${path} disappeared while it was being created.`);
  return hostKeyFrom(written, path);
}

/**
 * A DPoP proof (RFC 9449 §4.2) for one request: `htm` the method, `htu` the URL without
 * query and fragment, `iat` now, a random `jti`, and with an access token its `ath`.
 * `now` in milliseconds.
 */
export async function createProof(key: HostKey, o: { method: string; url: string; accessToken?: string; now?: number }): Promise<string> {
  const end = o.url.search(/[?#]/);
  const htu = end < 0 ? o.url : o.url.slice(0, end);
  const payload: Record<string, unknown> = {
    htm: o.method,
    htu,
    iat: Math.floor((o.now ?? Date.now()) / 1000),
    jti: randomUUID(),
    ...(o.accessToken !== undefined ? { ath: accessTokenHash(o.accessToken) } : {}),
  };
  return new SignJWT(payload).setProtectedHeader({ typ: DPOP_TYP, alg: key.alg, jwk: { ...key.publicJwk } }).sign(key.privateKey);
}

async function ensurePrivateDir(dir: string): Promise<void> {
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  const st = await fs.stat(dir);
  const uid = process.getuid?.();
  if (!st.isDirectory()) throw new HostKeyError(`${dir} is not a directory; give the host key a path in a private directory.`);
  // Anyone who can write the directory can swap the key file for theirs.
  if (uid !== undefined && (st.uid !== uid || (st.mode & 0o022) !== 0)) {
    throw new HostKeyError(`The directory ${dir} is writable by others or not owned by this user; keep the host key in a directory only you can write (chmod 700).`);
  }
}

/** The key file's JWK, or undefined when there is none; refuses a file others could read or replace. */
async function readKeyFile(path: string): Promise<Record<string, unknown> | undefined> {
  let handle: fs.FileHandle;
  try {
    handle = await fs.open(path, constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    if (code === 'ELOOP') throw new HostKeyError(`The host key file ${path} is a symbolic link; give the path of the file itself.`);
    throw new HostKeyError(`Cannot read the host key file ${path}: ${(err as Error).message}`, { cause: err });
  }
  try {
    const st = await handle.stat();
    const uid = process.getuid?.();
    if (!st.isFile()) throw new HostKeyError(`The host key file ${path} is not a regular file.`);
    if (uid !== undefined && st.uid !== uid) throw new HostKeyError(`The host key file ${path} is not owned by this user; the user who runs the job must own it.`);
    if ((st.mode & 0o077) !== 0) {
      throw new HostKeyError(`The host key file ${path} can be read or written by group or others (mode ${(st.mode & 0o777).toString(8)}); run chmod 600 on it, or delete it and create a new key.`);
    }
    if (st.size > 16 * 1024) throw new HostKeyError(`The host key file ${path} is too large to be a key.`);
    let value: unknown;
    try {
      value = JSON.parse(await handle.readFile('utf8'));
    } catch {
      throw new HostKeyError(`The host key file ${path} is not a JSON Web Key.`);
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new HostKeyError(`The host key file ${path} is not a JSON Web Key.`);
    return value as Record<string, unknown>;
  } finally {
    await handle.close();
  }
}

async function hostKeyFrom(jwk: Record<string, unknown>, path: string): Promise<HostKey> {
  const { kty, crv, x, y, d } = jwk;
  if (kty !== 'EC' || crv !== 'P-256' || typeof x !== 'string' || typeof y !== 'string' || typeof d !== 'string') {
    throw new HostKeyError(`The host key file ${path} is not an ES256 (P-256) private key.`);
  }
  let privateKey: CryptoKey;
  try {
    privateKey = (await importJWK({ kty, crv, x, y, d }, 'ES256')) as CryptoKey;
  } catch (err) {
    throw new HostKeyError(`The host key file ${path} holds an invalid P-256 key.`, { cause: err });
  }
  const publicJwk: JWK = { kty, crv, x, y };
  return { alg: 'ES256', jkt: await calculateJwkThumbprint(publicJwk, 'sha256'), publicJwk: Object.freeze(publicJwk), privateKey };
}
