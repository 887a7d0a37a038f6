import type { InjectConfig, SecretSource } from '../config/config.js';
import { resolveSecretRef } from '../config/secret-ref.js';
import { dropCgiAliases } from './headers/index.js';

/** Adds the upstream's credentials to the outgoing headers (the caller's were removed). */
export type Injector = (headers: Record<string, string | string[]>) => void;

/**
 * Builds an upstream's injector from its `inject` config. Secrets are read when the
 * injector is built (at start and on reload), never per request and never logged.
 */
export function buildInjector(inject: InjectConfig | undefined): Injector {
  if (!inject) return () => {};
  const read = (s: SecretSource) => resolveSecretRef(s.ref, s.key, s.baseDir);
  switch (inject.kind) {
    case 'bearer': {
      const value = `Bearer ${read(inject.token)}`;
      return (h) => set(h, 'authorization', value);
    }
    case 'basic': {
      // RFC 7617 §2: base64 of user-id ":" password, UTF-8.
      const value = `Basic ${Buffer.from(`${inject.username}:${read(inject.password)}`, 'utf8').toString('base64')}`;
      return (h) => set(h, 'authorization', value);
    }
    case 'header': {
      const name = inject.name.toLowerCase();
      const value = read(inject.value);
      return (h) => set(h, name, value);
    }
    case 'aws_sigv4':
      // Signed per request in the relay (src/relay/aws-sigv4-signer.ts): the signature
      // covers the calling job's own session, the path and the body, none known here.
      return () => {};
  }
}

/**
 * Sets the upstream's credential as the only field of its name: any header that a CGI-style
 * upstream would read as the same variable (`X_Api_Key` for `X-Api-Key`, RFC 3875 §4.1.18)
 * goes first, so the caller's value can't be merged with or win over the injected one.
 */
function set(headers: Record<string, string | string[]>, name: string, value: string): void {
  dropCgiAliases(headers, name);
  headers[name] = value;
}
