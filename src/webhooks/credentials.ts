import type { PortConfig } from '../config/config.js';
import type { SecretSource } from '../config/config.js';
import { resolveSecretRef } from '../config/secret-ref.js';

export interface WebhookCredentials {
  /** buildkite.webhook_secret (HMAC key), or undefined when not configured. */
  secret(): string | undefined;
  /** buildkite.webhook_token (clear-text token), or undefined when not configured. */
  token(): string | undefined;
  /** Re-reads both references (SIGHUP); on failure keeps the old values and throws the ConfigError. */
  reload(): void;
}

/**
 * Reads the webhook secret/token references once (a missing env var or file is a
 * ConfigError at start) and serves them to `webhookRoutes` until `reload()`.
 */
export function webhookCredentials(buildkite: Pick<PortConfig['buildkite'], 'webhookSecret' | 'webhookToken'>): WebhookCredentials {
  const read = (s: SecretSource | undefined) => (s === undefined ? undefined : resolveSecretRef(s.ref, s.key, s.baseDir));
  let secret = read(buildkite.webhookSecret);
  let token = read(buildkite.webhookToken);
  return {
    secret: () => secret,
    token: () => token,
    reload() {
      const nextSecret = read(buildkite.webhookSecret);
      const nextToken = read(buildkite.webhookToken);
      secret = nextSecret;
      token = nextToken;
    },
  };
}
