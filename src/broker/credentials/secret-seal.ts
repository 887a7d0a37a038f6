import type { JWK } from 'jose';
import { openPrivateKey, sealPrivateKey } from '../../issuer/key-wrap.js';
import { CredentialError } from './errors.js';

/**
 * Rotated secret values at rest. With `issuer.key_encryption_key` set they are sealed
 * exactly like Port's signing keys (src/issuer/key-wrap.ts: AES-256-GCM under an HKDF
 * key), with `secret:<credential>:<version>` as associated data so a sealed value can't
 * be moved to another credential or version. Without it they are stored as plain JSON.
 */
export function sealSecretValue(value: string, credential: string, version: number, kek: Buffer | undefined): string {
  return sealPrivateKey({ value } as JWK, aad(credential, version), kek);
}

export function openSecretValue(sealed: string, credential: string, version: number, kek: Buffer | undefined): string {
  try {
    const opened = openPrivateKey(sealed, aad(credential, version), kek) as { value?: unknown };
    if (typeof opened.value !== 'string') throw new Error('no value');
    return opened.value;
  } catch (err) {
    const why = kek === undefined ? 'it is sealed and issuer.key_encryption_key is not set' : 'it does not open with issuer.key_encryption_key (is it the secret it was sealed with?)';
    throw new CredentialError('credential_unavailable', `Version ${version} of the secret "${credential}" can't be read: ${why}.`, { cause: err });
  }
}

function aad(credential: string, version: number): string {
  return `secret:${credential}:${version}`;
}
