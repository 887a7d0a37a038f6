import type { SecretCredentialConfig } from '../../config/config.js';
import type { CredentialGrant, CredentialProvider, IssuedCredential } from './credential-provider.js';
import type { SecretRotation } from './secret-rotation.js';

/**
 * `secret`: the current value (the configured env:/file:/command: value, or the newest
 * rotated version). `expires_at` is the bearer Port token's `exp`, or sooner when the
 * schedule retires this value sooner (next rotation + overlap).
 */
export class SecretProvider implements CredentialProvider {
  constructor(private readonly secrets: SecretRotation) {}

  async issue(grant: CredentialGrant): Promise<IssuedCredential> {
    const cred = grant.credential as SecretCredentialConfig;
    const current = await this.secrets.current(cred);
    const retires = current.retiresAt === undefined ? Infinity : Math.floor(current.retiresAt / 1000);
    const expiresAt = Math.min(grant.claims.exp, retires);
    return {
      body: { name: cred.name, value: current.value, expires_at: new Date(expiresAt * 1000).toISOString() },
      expiresAt,
      // The job holds the value: revoking can't take it back; only rotating it (and its
      // retire call) ends its use. The revocation result says so (`port rotate <name>`).
      recallable: false,
      facts: { version: current.version, source: cred.rotation !== undefined && current.version > 0 ? 'rotation' : cred.value.ref.slice(0, cred.value.ref.indexOf(':')) },
    };
  }
}
