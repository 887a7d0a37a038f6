import type { FastifyInstance } from 'fastify';
import type { SigningKeys } from '../../issuer/signing-keys.js';
import { TOKEN_EXCHANGE_GRANT } from '../../broker/exchange-request.js';

/** OIDC Discovery 1.0 §4 and RFC 8414 metadata, and the JWK Set (RFC 7517) Port signs with. */
export function wellKnownRoutes(app: FastifyInstance, opts: { publicUrl: string; keys: SigningKeys; algorithm: string }): void {
  const base = opts.publicUrl;
  const metadata = {
    issuer: base,
    jwks_uri: `${base}/.well-known/jwks.json`,
    token_endpoint: `${base}/oauth/token`,
    revocation_endpoint: `${base}/oauth/revoke`,
    introspection_endpoint: `${base}/oauth/introspect`,
    grant_types_supported: [TOKEN_EXCHANGE_GRANT],
    token_endpoint_auth_methods_supported: ['none'],
    response_types_supported: ['id_token'],
    subject_types_supported: ['public'],
    id_token_signing_alg_values_supported: [opts.algorithm],
    token_endpoint_auth_signing_alg_values_supported: [opts.algorithm],
  };
  app.get('/.well-known/openid-configuration', async (_req, reply) => {
    reply.header('Cache-Control', 'public, max-age=300');
    return metadata;
  });
  app.get('/.well-known/jwks.json', async (_req, reply) => {
    // Short cache: a rotated key must reach verifiers well within the overlap window.
    reply.header('Cache-Control', 'public, max-age=300');
    return opts.keys.jwks();
  });
}
