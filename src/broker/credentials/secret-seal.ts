import type { JWK } from 'jose';
import type { SecretCredentialConfig } from '../../config/config.js';
import { openPrivateKey, sealPrivateKey } from '../../issuer/key-wrap.js';
import { CredentialError } from './errors.js';

/** A rotated value as stored, with the handles its retire call names it by. */
export interface StoredSecret {
  value: string;
  /** `request_id` of the rotate call that produced it. */
  rotationId?: string;
  /** The hook's own id for it, if it answered one. */
  valueId?: string;
}

/**
 * Rotated secret values at rest. With `issuer.key_encryption_key` set they are sealed
 * exactly like Port's signing keys (src/issuer/key-wrap.ts: AES-256-GCM under an HKDF
 * key), with `secret:<credential>:<version>` as associated data so a sealed value can't
 * be moved to another credential or version. Without it they are stored as plain JSON
 * (Port warns at start: unsealedRotationWarning).
 */
export function sealSecretValue(secret: StoredSecret, credential: string, version: number, kek: Buffer | undefined): string {
  const record = { value: secret.value, ...(secret.rotationId !== undefined ? { rotation_id: secret.rotationId } : {}), ...(secret.valueId !== undefined ? { value_id: secret.valueId } : {}) };
  return sealPrivateKey(record as JWK, aad(credential, version), kek);
}

export function openSecretValue(sealed: string, credential: string, version: number, kek: Buffer | undefined): StoredSecret {
  try {
    const opened = openPrivateKey(sealed, aad(credential, version), kek) as { value?: unknown; rotation_id?: unknown; value_id?: unknown };
    if (typeof opened.value !== 'string') throw new Error('no value');
    return {
      value: opened.value,
      ...(typeof opened.rotation_id === 'string' ? { rotationId: opened.rotation_id } : {}),
      ...(typeof opened.value_id === 'string' ? { valueId: opened.value_id } : {}),
    };
  } catch (err) {
    const why = kek === undefined ? 'it is sealed and issuer.key_encryption_key is not set' : 'it does not open with issuer.key_encryption_key (is it the secret it was sealed with?)';
    throw new CredentialError('credential_unavailable', `Version ${version} of the secret "${credential}" can't be read: ${why}.`, { cause: err });
  }
}

/**
 * The start-up warning when rotated values would be stored in plain text:
 * some secret has `rotation` and `issuer.key_encryption_key` is unset. Undefined otherwise.
 */
export function unsealedRotationWarning(credentials: readonly SecretCredentialConfig[], keyEncryptionKey: string | undefined): string | undefined {
  if (keyEncryptionKey !== undefined) return undefined;
  const rotating = credentials.filter((c) => c.rotation !== undefined).map((c) => `credentials.${c.name}`);
  if (rotating.length === 0) return undefined;
  return `issuer.key_encryption_key is not set: rotated secret values of ${rotating.join(', ')} are stored unencrypted in the store; set issuer.key_encryption_key to seal them`;
}

function aad(credential: string, version: number): string {
  return `secret:${credential}:${version}`;
}
