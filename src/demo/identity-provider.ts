/**
 * The demo's company identity provider: a real OpenID Provider (the `oidc-provider`
 * package, https://github.com/panva/node-oidc-provider) on 127.0.0.1 with a few demo
 * people in groups, one confidential client for Port (authorization code with PKCE,
 * RFC 7636), the groups claim in the ID token, and its own small sign-in page that checks
 * a password (the package's development pages accept any password, so they are not used).
 * Consent is implied: Port is the only client, a first-party one.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair } from 'jose';

export interface DemoPerson {
  /** The sign-in name (also accepted: the e-mail address). */
  login: string;
  email: string;
  name: string;
  groups: string[];
}

export const DEMO_PEOPLE: readonly DemoPerson[] = [
  { login: 'alice', email: 'alice@acme.test', name: 'Alice Approver', groups: ['approvers'] },
  { login: 'bob', email: 'bob@acme.test', name: 'Bob Builder', groups: ['approvers', 'developers'] },
];

export const DEMO_CLIENT_ID = 'port-demo';
export const DEMO_SCOPES = ['openid', 'email', 'profile', 'groups'];

export interface DemoIdentityProvider {
  /** The issuer (and base) URL, `http://127.0.0.1:<port>`. */
  url: string;
  close(): Promise<void>;
}

/** The part of oidc-provider's API the demo uses (the package ships no type declarations). */
interface OidcProvider {
  callback(): (req: IncomingMessage, res: ServerResponse) => void;
  interactionDetails(req: IncomingMessage, res: ServerResponse): Promise<Interaction>;
  interactionFinished(req: IncomingMessage, res: ServerResponse, result: Record<string, unknown>, opts?: { mergeWithLastSubmission?: boolean }): Promise<void>;
  Grant: GrantClass;
}
interface Interaction {
  uid: string;
  prompt: { name: string; details: { missingOIDCScope?: string[]; missingOIDCClaims?: string[] } };
  params: { client_id?: unknown };
  session?: { accountId?: string };
  grantId?: string;
}
interface GrantClass {
  new (init: { accountId: string; clientId: string }): Grant;
  find(id: string): Promise<Grant | undefined>;
}
interface Grant {
  addOIDCScope(scope: string): void;
  addOIDCClaims(claims: string[]): void;
  save(): Promise<string>;
}
type ProviderConstructor = new (issuer: string, configuration: Record<string, unknown>) => OidcProvider;

/**
 * Starts the identity provider on `port` (0 = any free port). `redirectUri` is Port's
 * `<public_url>/auth/callback`; `clientSecret` and `password` (every demo person's) are
 * the demo's random values.
 */
export async function startDemoIdentityProvider(opts: { port: number; redirectUri: string; clientSecret: string; password: string }): Promise<DemoIdentityProvider> {
  // A runtime dependency only the demo needs, so it is loaded only here.
  const Provider = await loadProvider();
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  const byLogin = (login: string): DemoPerson | undefined => {
    const name = login.trim().toLowerCase();
    return DEMO_PEOPLE.find((p) => p.login === name || p.email === name);
  };
  const provider = new Provider(url, {
    clients: [
      {
        client_id: DEMO_CLIENT_ID,
        client_secret: opts.clientSecret,
        redirect_uris: [opts.redirectUri],
        grant_types: ['authorization_code'],
        response_types: ['code'],
        token_endpoint_auth_method: 'client_secret_basic',
      },
    ],
    jwks: { keys: [{ ...(await exportJWK(privateKey)), kid: 'demo-idp-1', alg: 'RS256', use: 'sig' }] },
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    pkce: { required: () => true },
    scopes: DEMO_SCOPES,
    claims: { email: ['email', 'email_verified'], groups: ['groups'], profile: ['name'] },
    // The groups claim in the ID token itself, where Port's sso.groups_claim reads it.
    conformIdTokenClaims: false,
    features: { devInteractions: { enabled: false } },
    adapter: MemoryStore,
    ttl: { Interaction: 600, Session: 3600, Grant: 3600, AccessToken: 600, IdToken: 600, AuthorizationCode: 60 },
    async findAccount(_ctx: unknown, id: string) {
      const person = DEMO_PEOPLE.find((p) => p.email === id);
      if (!person) return undefined;
      return {
        accountId: person.email,
        async claims() {
          return { sub: person.email, email: person.email, email_verified: true, name: person.name, groups: person.groups };
        },
      };
    },
  });
  const oidc = provider.callback();
  const password = Buffer.from(opts.password);
  const passwordMatches = (given: string): boolean => {
    const g = Buffer.from(given);
    return g.length === password.length && timingSafeEqual(g, password);
  };

  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const path = new URL(req.url ?? '/', url).pathname;
    // The provider's interaction URL is /interaction/<uid> (its default `interactions.url`).
    const m = /^\/interaction\/([A-Za-z0-9_-]+)(\/login)?$/.exec(path);
    if (!m) return oidc(req, res);
    void interaction(req, res, m[2] !== undefined).catch(() => {
      if (!res.headersSent) page(res, 400, '<p>This sign-in has expired or is not valid. Go back to Port and start again.</p>');
    });
  });

  async function interaction(req: IncomingMessage, res: ServerResponse, submitted: boolean): Promise<void> {
    const details = await provider.interactionDetails(req, res);
    if (details.prompt.name === 'consent') return consent(req, res, details);
    if (details.prompt.name !== 'login') return page(res, 400, '<p>Unexpected sign-in step.</p>');
    const action = `/interaction/${details.uid}/login`;
    if (!submitted || req.method !== 'POST') return page(res, 200, loginForm(action));
    const form = new URLSearchParams(await readBody(req));
    const person = byLogin(form.get('login') ?? '');
    if (!person || !passwordMatches(form.get('password') ?? '')) {
      return page(res, 401, loginForm(action, 'Unknown user or wrong password.'));
    }
    await provider.interactionFinished(req, res, { login: { accountId: person.email } }, { mergeWithLastSubmission: false });
  }

  /** Port is this provider's only client, so what it asks for is granted. */
  async function consent(req: IncomingMessage, res: ServerResponse, details: Interaction): Promise<void> {
    const accountId = details.session?.accountId;
    if (!accountId || typeof details.params.client_id !== 'string') return page(res, 400, '<p>Sign in first.</p>');
    const grant = (details.grantId ? await provider.Grant.find(details.grantId) : undefined) ?? new provider.Grant({ accountId, clientId: details.params.client_id });
    if (details.prompt.details.missingOIDCScope) grant.addOIDCScope(details.prompt.details.missingOIDCScope.join(' '));
    if (details.prompt.details.missingOIDCClaims) grant.addOIDCClaims(details.prompt.details.missingOIDCClaims);
    const grantId = await grant.save();
    await provider.interactionFinished(req, res, { consent: details.grantId ? {} : { grantId } }, { mergeWithLastSubmission: true });
  }

  return {
    url,
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}

/**
 * oidc-provider, loaded on first use. It warns on import that it supports only Node.js 22
 * and later; the demo's flow (authorization code, PKCE, ID token) is the one Port's own
 * tests run on the Node.js versions Port supports, so that one line is not shown.
 */
async function loadProvider(): Promise<ProviderConstructor> {
  const specifier = 'oidc-provider';
  const warn = console.warn;
  console.warn = (...args: unknown[]) => {
    if (!(typeof args[0] === 'string' && args[0].includes('oidc-provider WARNING: Unsupported runtime'))) warn(...args);
  };
  try {
    return ((await import(specifier)) as { default: ProviderConstructor }).default;
  } finally {
    console.warn = warn;
  }
}

/**
 * The provider's storage (sessions, interactions, codes, grants) in this process's
 * memory: the demo's identity provider is one process whose state ends with it, so the
 * package's own memory adapter is right in substance; this one is given explicitly so it
 * doesn't warn that state is lost on restart. Interface: oidc-provider's adapter
 * (https://github.com/panva/node-oidc-provider/blob/main/example/my_adapter.js).
 */
interface StoredPayload {
  grantId?: string;
  userCode?: string;
  uid?: string;
  consumed?: number;
  [key: string]: unknown;
}
const stored = new Map<string, { payload: StoredPayload; expiresAt: number | undefined }>();
class MemoryStore {
  constructor(private readonly model: string) {}
  private key(id: string): string {
    return `${this.model}:${id}`;
  }
  async upsert(id: string, payload: StoredPayload, expiresIn?: number): Promise<void> {
    stored.set(this.key(id), { payload, expiresAt: expiresIn ? Date.now() + expiresIn * 1000 : undefined });
  }
  async find(id: string): Promise<StoredPayload | undefined> {
    const entry = stored.get(this.key(id));
    if (!entry) return undefined;
    if (entry.expiresAt !== undefined && entry.expiresAt <= Date.now()) {
      stored.delete(this.key(id));
      return undefined;
    }
    return entry.payload;
  }
  async findByUid(uid: string): Promise<StoredPayload | undefined> {
    for (const [key, entry] of stored) if (key.startsWith(`${this.model}:`) && entry.payload.uid === uid) return this.find(key.slice(this.model.length + 1));
    return undefined;
  }
  async findByUserCode(userCode: string): Promise<StoredPayload | undefined> {
    for (const [key, entry] of stored) if (key.startsWith(`${this.model}:`) && entry.payload.userCode === userCode) return this.find(key.slice(this.model.length + 1));
    return undefined;
  }
  async consume(id: string): Promise<void> {
    const entry = stored.get(this.key(id));
    if (entry) entry.payload.consumed = Math.floor(Date.now() / 1000);
  }
  async destroy(id: string): Promise<void> {
    stored.delete(this.key(id));
  }
  async revokeByGrantId(grantId: string): Promise<void> {
    for (const [key, entry] of stored) if (entry.payload.grantId === grantId) stored.delete(key);
  }
}

function loginForm(action: string, error?: string): string {
  const people = DEMO_PEOPLE.map((p) => `<li><code>${p.login}</code> (${p.name}; groups: ${p.groups.join(', ')})</li>`).join('');
  return [
    '<h1>Sign in to Acme</h1>',
    '<p class="hint">The demo identity provider of <code>port demo</code>. The password is printed in the demo\'s output.</p>',
    error ? `<p class="error" role="alert">${error}</p>` : '',
    `<form method="post" action="${action}">`,
    '<label>User <input name="login" autocomplete="username" autofocus required></label>',
    '<label>Password <input name="password" type="password" autocomplete="current-password" required></label>',
    '<button type="submit">Sign in</button>',
    '</form>',
    `<p class="hint">Demo people:</p><ul>${people}</ul>`,
  ].join('\n');
}

function page(res: ServerResponse, status: number, body: string): void {
  const html = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Acme sign-in (demo)</title>
<style>body{font:16px system-ui,sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem}label{display:block;margin:.8rem 0}input{display:block;width:100%;padding:.4rem;font:inherit}button{padding:.5rem 1.2rem;font:inherit}.error{color:#b00020}.hint{color:#555}</style>
</head><body>${body}</body></html>`;
  res.writeHead(status, {
    'content-type': 'text/html; charset=utf-8',
    'cache-control': 'no-store',
    // No form-action: the sign-in redirects on to Port, another origin (CSP Level 3, form-action).
    'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'",
  });
  res.end(html);
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > 16 * 1024) throw new Error('sign-in form too large');
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}
