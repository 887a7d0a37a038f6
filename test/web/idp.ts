/**
 * The company IdP of the web tests: a real `oidc-provider` on 127.0.0.1 with a small
 * directory of people in groups, one confidential client (`port`, PKCE required), the
 * groups claim in the ID token, and the provider's development sign-in and consent
 * pages (any password is accepted; the login name is the e-mail address).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair } from 'jose';
import Provider from 'oidc-provider';

export interface IdpPerson {
  name: string;
  groups: string[];
  /** What the IdP says of the e-mail address: `email_verified` true (the default), false, or no claim at all (as Entra ID). */
  emailVerified?: boolean | 'absent';
}

/** The company directory the IdP knows. */
export const IDP_USERS: Record<string, IdpPerson> = {
  'dev@acme.test': { name: 'Dana Dev', groups: ['platform'] },
  'rel@acme.test': { name: 'Rel Ease', groups: ['deployers'] },
  'pat@acme.test': { name: 'Pat Platform', groups: ['platform'] },
  'sam@acme.test': { name: 'Sam Security', groups: ['security'] },
  'out@acme.test': { name: 'Oli Outsider', groups: ['developers'] },
};

export const IDP_CLIENT_ID = 'port';
export const IDP_CLIENT_SECRET = 'port-client-secret-for-tests';
export const IDP_SCOPES = ['openid', 'email', 'profile', 'groups'];

export interface Idp {
  /** The issuer (and base) URL, `http://127.0.0.1:<port>`. */
  url: string;
  provider: Provider;
  close(): Promise<void>;
}

/** Listens on a free 127.0.0.1 port; returns its base URL. */
export async function listening(server: Server): Promise<string> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/**
 * `count` distinct free TCP ports on 127.0.0.1, for servers that must know their own
 * URL before they start (Port's `public_url`, which the IdP's redirect URI names). The
 * probes listen on port 0 together (so the ports differ) and close again; another
 * process could take a port in the moment before it is used, which tests accept.
 */
export async function reservePorts(count: number): Promise<number[]> {
  const probes = Array.from({ length: count }, () => createServer());
  await Promise.all(probes.map((p) => listening(p)));
  const ports = probes.map((p) => (p.address() as AddressInfo).port);
  await Promise.all(probes.map((p) => new Promise<void>((resolve) => p.close(() => resolve()))));
  return ports;
}

/**
 * Starts the IdP. `redirectUris` are the `port` client's registered redirect URIs
 * (`<Port's public_url>/auth/callback`); pass `server` to use a socket that is already
 * listening (its URL becomes the issuer).
 */
export async function startIdp(opts: { redirectUris: string[]; users?: Record<string, IdpPerson>; server?: Server }): Promise<Idp> {
  const users = opts.users ?? IDP_USERS;
  const server = opts.server ?? createServer();
  const url = server.listening ? `http://127.0.0.1:${(server.address() as AddressInfo).port}` : await listening(server);

  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  const provider = new Provider(url, {
    clients: [
      {
        client_id: IDP_CLIENT_ID,
        client_secret: IDP_CLIENT_SECRET,
        redirect_uris: opts.redirectUris,
        grant_types: ['authorization_code'],
        response_types: ['code'],
        token_endpoint_auth_method: 'client_secret_basic',
      },
    ],
    jwks: { keys: [{ ...(await exportJWK(privateKey)), kid: 'idp-1', alg: 'RS256', use: 'sig' }] },
    cookies: { keys: ['idp-cookie-key-for-tests'] },
    pkce: { required: () => true },
    scopes: IDP_SCOPES,
    claims: { email: ['email', 'email_verified'], groups: ['groups'], profile: ['name'] },
    // The groups claim in the ID token itself (as Port's config says), not only at userinfo.
    conformIdTokenClaims: false,
    features: { devInteractions: { enabled: true } },
    ttl: { Interaction: 600, Session: 3600, Grant: 3600, AccessToken: 600, IdToken: 600, AuthorizationCode: 60 },
    async findAccount(_ctx: unknown, id: string) {
      const email = id.trim().toLowerCase();
      const person = users[email];
      if (!person) return undefined;
      return {
        accountId: email,
        async claims() {
          const verified = person.emailVerified ?? true;
          return { sub: email, email, ...(verified === 'absent' ? {} : { email_verified: verified }), name: person.name, groups: person.groups };
        },
      };
    },
  });
  server.on('request', provider.callback());

  return {
    url,
    provider,
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}
