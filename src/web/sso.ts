/**
 * SSO sign-in for approvers: OpenID Connect
 * authorization code flow with PKCE through `openid-client`, groups from the ID
 * token's configured claim, and server-side sessions.
 *
 * - `GET /login?return_to=/approvals/…` starts a sign-in. State, nonce, PKCE verifier
 *   and the (same-origin, relative) return path are sealed (AES-256-GCM) into the
 *   login cookie (HttpOnly, Secure, SameSite=Lax, 10 min): Port holds nothing per
 *   sign-in, so no flood of `/login` can evict anyone's (src/web/login-cookie.ts says
 *   why, and about the key).
 * - `GET /auth/callback` clears that cookie and exchanges the code (state, nonce and
 *   PKCE checked by openid-client), reads `email` (required, lower-cased; with
 *   `sso.require_email_verified`, `email_verified` must be true), `name` and the groups
 *   claim, refuses a person with a `user` revocation in force (403 `user_revoked`),
 *   upserts the person as an active UserRecord (a SCIM-provisioned person keeps SCIM's
 *   `active` and groups; a deactivated one is refused) and opens a session: a 32-byte
 *   random session cookie (HttpOnly, Secure, SameSite=Lax, Path=/, Max-Age =
 *   sso.session_ttl) whose SHA-256 is the store key, with its own CSRF token.
 * - `POST /logout` (CSRF-checked) ends the session.
 *
 * Every authenticated request re-reads the UserRecord and the revocations: an unknown,
 * deactivated or revoked person's sessions are deleted and the request is treated as
 * signed out, so their cookie stops working on their next request.
 *
 * Cookie names (CookieNames): when Port's public URL is https they carry the `__Host-`
 * prefix, which browsers accept only with Secure, Path=/ and no Domain (RFC 6265bis
 * §4.1.3.2), so a sibling host under the same registrable domain can't plant ("toss")
 * one that Port would read. Plain `port_session` / `port_login` over http (the local
 * demo), where no browser would keep a prefixed cookie. A header that carries one of
 * Port's cookie names twice is treated as carrying none (someone planted the other).
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import * as oidc from 'openid-client';
import type { SessionRecord, UserRecord } from '../store/records/approvals.js';
import type { PortConfig } from '../config/config.js';
import { resolveSecretRef } from '../config/secret-ref.js';
import { revocationEnd, type Revocation, type RevocationList } from '../revocation/revocation-list.js';
import type { Store } from '../store/store.js';
import { parseCookies, serializeCookie } from './cookies.js';
import { html, securityHeaders, sendErrorPage, sendPage, type PageViewer } from './html.js';
import { loginCookieKey, LoginSealer, type LoginInProgress } from './login-cookie.js';

const CALLBACK_PATH = '/auth/callback';
/** How long a started sign-in may take at the IdP. */
const LOGIN_TTL_SECONDS = 600;
const COOKIE_VALUE = /^[A-Za-z0-9_-]{43}$/;

/** The names and login-cookie path Port uses behind `publicUrl` (see the module comment). */
export interface CookieNames {
  session: string;
  login: string;
  /** `/` for `__Host-` (required); else only the callback needs it. */
  loginPath: string;
}

export function cookieNames(publicUrl: string): CookieNames {
  return new URL(publicUrl).protocol === 'https:'
    ? { session: '__Host-port_session', login: '__Host-port_login', loginPath: '/' }
    : { session: 'port_session', login: 'port_login', loginPath: CALLBACK_PATH };
}

/**
 * The value of cookie `name`, or undefined when it is absent or sent more than once:
 * two of one name means another host or path planted one (RFC 6265 §8.6), and Port can't
 * tell which is its own.
 */
function soleCookie(header: string | undefined, name: string): string | undefined {
  return cookieValues(header, name).length === 1 ? parseCookies(header).get(name) : undefined;
}

export interface SsoDeps {
  config: PortConfig;
  store: Store;
  /** Port's public base URL; the redirect URI is `${publicUrl}/auth/callback`. */
  publicUrl: string;
  /** A person with a `user` revocation in force can't sign in, and their sessions end. */
  revocations: RevocationList;
  /** Where a sign-in without (a valid) `return_to` lands. Default `/approvals`. */
  home?: string;
  now?: () => number;
}

/** A signed-in person: their session and their current UserRecord. */
export interface SignedIn {
  session: SessionRecord;
  user: UserRecord;
  viewer: PageViewer;
}

const sha256 = (s: string): Buffer => createHash('sha256').update(s).digest();
const sha256hex = (s: string): string => createHash('sha256').update(s).digest('hex');

/** Sessions and CSRF for the web pages; built by `ssoRoutes`. */
export class WebSessions {
  readonly origin: string;
  readonly home: string;
  readonly cookies: CookieNames;
  private readonly base: string;
  private readonly secure = true;

  constructor(
    private readonly deps: SsoDeps,
    private readonly now: () => number,
  ) {
    this.base = deps.publicUrl.replace(/\/+$/, '');
    this.origin = new URL(this.base).origin;
    this.home = deps.home ?? '/approvals';
    this.cookies = cookieNames(this.base);
  }

  /** The `user` revocation in force for this e-mail, if any: one map lookup. */
  revocationOf(email: string): Revocation | undefined {
    return this.deps.revocations.get('user', email.toLowerCase(), this.now());
  }

  /** The signed-in person, or undefined (no, unknown, expired or ended session; inactive or revoked user). */
  async current(request: FastifyRequest): Promise<SignedIn | undefined> {
    const value = soleCookie(request.headers.cookie, this.cookies.session);
    if (!value || !COOKIE_VALUE.test(value)) return undefined;
    const idHash = sha256hex(value);
    const session = await this.deps.store.sessions.get(idHash);
    if (!session || session.expiresAt <= this.now()) return undefined;
    const user = await this.deps.store.users.get(session.email);
    if (!user || !user.active) {
      // A deactivated (or removed) person is signed out everywhere, at once.
      if (user) await this.deps.store.sessions.deleteAllOf(user.email);
      await this.deps.store.sessions.delete(idHash);
      request.log.info({ email: session.email }, 'session refused: the user is unknown or deactivated');
      return undefined;
    }
    const revoked = this.revocationOf(user.email);
    if (revoked) {
      // A revocation made on another replica, or after this session opened: it ends here too.
      await this.deps.store.sessions.deleteAllOf(user.email);
      await this.deps.store.sessions.delete(idHash);
      request.log.info({ email: user.email, revoked_until: revocationEnd(revoked.expiresAt) }, 'session refused: the user is revoked');
      return undefined;
    }
    const viewer: PageViewer = { email: user.email, csrfToken: session.csrfToken, ...(user.name ? { name: user.name } : {}) };
    return { session, user, viewer };
  }

  /**
   * The signed-in person, or answers for them: GET → 302 to sign-in (returning here
   * afterwards); anything else → a 401 page. A stale session cookie is cleared.
   */
  async require(request: FastifyRequest, reply: FastifyReply): Promise<SignedIn | undefined> {
    const who = await this.current(request);
    if (who) return who;
    if (parseCookies(request.headers.cookie).has(this.cookies.session)) reply.header('set-cookie', this.clearSessionCookie());
    if (request.method === 'GET' || request.method === 'HEAD') {
      const here = this.safeReturnTo(request.url) ?? this.home;
      securityHeaders(reply).redirect(`/login?return_to=${encodeURIComponent(here)}`, 302);
      return undefined;
    }
    sendErrorPage(reply, 401, 'not_signed_in', 'You are not signed in (or your session has ended). Sign in and try again.', {
      link: { href: `/login?return_to=${encodeURIComponent(this.home)}`, text: 'Sign in' },
    });
    return undefined;
  }

  /**
   * CSRF check for a state-changing form: the synchronizer token must equal the
   * session's (constant-time), and `Origin` / `Sec-Fetch-Site`, when the browser sent
   * them, must say the form came from Port itself. (`Origin: null` is what browsers
   * send for any form POST from a page with `Referrer-Policy: no-referrer` — Port's
   * own pages — so it proves nothing either way; `Sec-Fetch-Site` and the token decide.)
   */
  csrfOk(request: FastifyRequest, session: SessionRecord, token: unknown): boolean {
    const origin = request.headers.origin;
    if (origin !== undefined && origin !== 'null' && origin !== this.origin) return false;
    const site = request.headers['sec-fetch-site'];
    if (site !== undefined && site !== 'same-origin') return false;
    if (typeof token !== 'string' || token.length === 0 || token.length > 256) return false;
    return timingSafeEqual(sha256(token), sha256(session.csrfToken));
  }

  /**
   * A same-origin relative path (`/approvals/…`, with query) or undefined: no scheme,
   * no host, no `//` or `\` tricks, no control characters, not the sign-in routes.
   */
  safeReturnTo(value: unknown): string | undefined {
    if (typeof value !== 'string' || value.length === 0 || value.length > 2048) return undefined;
    if (!value.startsWith('/') || value.startsWith('//') || value.includes('\\')) return undefined;
    if (/[\u0000-\u001f\u007f]/.test(value)) return undefined;
    let url: URL;
    try {
      url = new URL(value, this.origin);
    } catch {
      return undefined;
    }
    if (url.origin !== this.origin) return undefined;
    if (url.pathname === '/login' || url.pathname === '/logout' || url.pathname.startsWith('/auth/')) return undefined;
    // Normalisation can turn `/.//evil.example` into `//evil.example`: a host again.
    if (url.pathname.startsWith('//')) return undefined;
    return `${url.pathname}${url.search}`;
  }

  /** Opens a session for `user`; returns its Set-Cookie value. */
  async open(user: UserRecord): Promise<string> {
    const ttl = this.deps.config.sso!.sessionTtl;
    const value = randomBytes(32).toString('base64url');
    const now = this.now();
    await this.deps.store.sessions.create({
      idHash: sha256hex(value),
      email: user.email,
      ...(user.name ? { name: user.name } : {}),
      groups: user.groups,
      csrfToken: randomBytes(32).toString('base64url'),
      createdAt: now,
      expiresAt: now + ttl * 1000,
    });
    return serializeCookie(this.cookies.session, value, { maxAge: ttl, path: '/', secure: this.secure, sameSite: 'Lax' });
  }

  /** Ends the session the request carries, if any. */
  async close(request: FastifyRequest): Promise<void> {
    // Every copy the browser sent: a sign-in or sign-out leaves none of them usable.
    for (const value of cookieValues(request.headers.cookie, this.cookies.session)) {
      if (COOKIE_VALUE.test(value)) await this.deps.store.sessions.delete(sha256hex(value));
    }
  }

  clearSessionCookie(): string {
    return serializeCookie(this.cookies.session, '', { maxAge: 0, path: '/', secure: this.secure, sameSite: 'Lax' });
  }

  loginCookie(value: string, maxAge: number): string {
    return serializeCookie(this.cookies.login, value, { maxAge, path: this.cookies.loginPath, secure: this.secure, sameSite: 'Lax' });
  }

  /** The sealed sign-in the request carries (undefined when absent or sent twice). */
  loginCookieOf(request: FastifyRequest): string | undefined {
    return soleCookie(request.headers.cookie, this.cookies.login);
  }

  get redirectUri(): string {
    return `${this.base}${CALLBACK_PATH}`;
  }
}

/** The IdP's metadata and Port's client, discovered on first use (and again after a failure). */
class IdpClient {
  private configuration: Promise<oidc.Configuration> | undefined;

  constructor(private readonly sso: NonNullable<PortConfig['sso']>) {}

  get(): Promise<oidc.Configuration> {
    this.configuration ??= this.discover().catch((err: unknown) => {
      this.configuration = undefined;
      throw err;
    });
    return this.configuration;
  }

  private async discover(): Promise<oidc.Configuration> {
    const { issuer, clientId, clientSecret } = this.sso;
    const secret = resolveSecretRef(clientSecret.ref, clientSecret.key, clientSecret.baseDir);
    const url = new URL(issuer);
    // Plain http only for an IdP on the same machine (tests, the demo); anywhere else TLS.
    const execute = url.protocol === 'http:' && isLoopback(url.hostname) ? [oidc.allowInsecureRequests] : [];
    const found = await oidc.discovery(url, clientId, { client_secret: secret }, oidc.ClientSecretBasic(secret), { execute, timeout: 10 });
    const methods = found.serverMetadata().token_endpoint_auth_methods_supported;
    if (methods && !methods.includes('client_secret_basic') && methods.includes('client_secret_post')) {
      const post = new oidc.Configuration(found.serverMetadata(), clientId, { client_secret: secret }, oidc.ClientSecretPost(secret));
      execute.forEach((f) => f(post));
      return post;
    }
    return found;
  }
}

function isLoopback(hostname: string): boolean {
  return hostname === 'localhost' || hostname === '[::1]' || /^127(\.\d{1,3}){3}$/.test(hostname);
}

/**
 * Registers `GET /login`, `GET /auth/callback` and `POST /logout`; returns the
 * sessions helper the pages use. Requires `config.sso`.
 */
export function ssoRoutes(app: FastifyInstance, deps: SsoDeps): WebSessions {
  const sso = deps.config.sso;
  if (!sso) throw new Error('ssoRoutes needs the sso: section of the config');
  const now = deps.now ?? Date.now;
  const sessions = new WebSessions(deps, now);
  const idp = new IdpClient(sso);
  const sealer = new LoginSealer(loginCookieKey(deps.config.issuer.keyEncryptionKey), sessions.redirectUri);
  ensureFormParser(app);

  app.get('/login', async (request, reply) => {
    const returnTo = sessions.safeReturnTo((request.query as Record<string, unknown>).return_to) ?? sessions.home;
    let configuration: oidc.Configuration;
    try {
      configuration = await idp.get();
    } catch (err) {
      request.log.error({ err: { message: (err as Error).message } }, 'SSO discovery failed');
      return sendErrorPage(reply, 503, 'sso_unavailable', 'Port cannot reach the sign-in provider right now; try again in a minute.', {
        link: { href: `/login?return_to=${encodeURIComponent(returnTo)}`, text: 'Try again' },
      });
    }
    const verifier = oidc.randomPKCECodeVerifier();
    const login: LoginInProgress = {
      state: oidc.randomState(),
      nonce: oidc.randomNonce(),
      verifier,
      returnTo,
      expiresAt: now() + LOGIN_TTL_SECONDS * 1000,
    };
    const target = oidc.buildAuthorizationUrl(configuration, {
      redirect_uri: sessions.redirectUri,
      scope: sso.scopes.join(' '),
      response_type: 'code',
      code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state: login.state,
      nonce: login.nonce,
    });
    reply.header('set-cookie', sessions.loginCookie(sealer.seal(login), LOGIN_TTL_SECONDS));
    return securityHeaders(reply).redirect(target.href, 302);
  });

  app.get(CALLBACK_PATH, async (request, reply) => {
    reply.header('set-cookie', sessions.loginCookie('', 0));
    const sealed = sealer.open(sessions.loginCookieOf(request), now());
    // Defence in depth against a replayed callback: each sign-in finishes once, on whichever
    // replica, recorded in the store until it would have expired anyway. The IdP's one-use
    // code is the real guard (login-cookie.ts); this refuses the replay before the IdP is asked.
    const login = sealed && (await deps.store.replay.consume(`login:${createHash('sha256').update(sealed.state).digest('hex')}`, sealed.expiresAt)) ? sealed : undefined;
    const again = (to: string) => ({ link: { href: `/login?return_to=${encodeURIComponent(to)}`, text: 'Sign in again' } });
    if (!login) {
      return sendErrorPage(reply, 400, 'login_expired', 'This sign-in was not started here, took too long or was already used; sign in again.', again(sessions.home));
    }
    const query = request.query as Record<string, unknown>;
    if (typeof query.error === 'string') {
      request.log.info({ error: query.error }, 'the IdP refused the sign-in');
      return sendErrorPage(reply, 403, 'sso_refused', `The sign-in provider refused the sign-in (${query.error.slice(0, 100)}).`, again(login.returnTo));
    }
    let profile: Record<string, unknown>;
    try {
      const configuration = await idp.get();
      const q = request.url.indexOf('?');
      const currentUrl = new URL(sessions.redirectUri);
      currentUrl.search = q >= 0 ? request.url.slice(q) : '';
      const tokens = await oidc.authorizationCodeGrant(configuration, currentUrl, {
        pkceCodeVerifier: login.verifier,
        expectedState: login.state,
        expectedNonce: login.nonce,
        idTokenExpected: true,
      });
      const claims = tokens.claims()!;
      profile = { ...claims };
      // Some IdPs put only `sub` in the ID token; the rest is at the userinfo endpoint.
      const wanted = typeof claims.email !== 'string' || !(sso.groupsClaim in claims) || (sso.requireEmailVerified && claims.email_verified === undefined);
      if (wanted && configuration.serverMetadata().userinfo_endpoint) {
        const info = await oidc.fetchUserInfo(configuration, tokens.access_token, claims.sub);
        profile = { ...info, ...claims };
      }
    } catch (err) {
      const e = err as Error & { code?: string; error?: string };
      request.log.warn({ err: { name: e.name, code: e.code ?? e.error, message: e.message } }, 'SSO callback failed');
      const fromIdp = err instanceof oidc.ResponseBodyError || err instanceof oidc.AuthorizationResponseError;
      return sendErrorPage(
        reply,
        fromIdp || err instanceof oidc.ClientError ? 400 : 502,
        'sso_failed',
        'The sign-in could not be completed (the provider\'s answer did not check out); sign in again.',
        again(login.returnTo),
      );
    }
    const email = typeof profile.email === 'string' ? profile.email.trim().toLowerCase() : '';
    if (!/^[^\s@]+@[^\s@]+$/.test(email) || email.length > 254) {
      return sendErrorPage(reply, 403, 'sso_no_email', 'The sign-in provider did not say who you are (no e-mail address); ask your IdP admin to release the email claim to Port.', again(login.returnTo));
    }
    // The e-mail is the person's identity in Port (approver, author exclusion), so an
    // address the IdP has not verified must not become one (OIDC Core §5.1 `email_verified`).
    const verified = emailVerified(profile.email_verified);
    if (verified === false) {
      request.log.info({ email }, 'sign-in refused: email_verified is false');
      return sendErrorPage(reply, 403, 'sso_email_unverified', 'The sign-in provider says your e-mail address is not verified; verify it there and sign in again.', again(login.returnTo));
    }
    if (verified === undefined && sso.requireEmailVerified) {
      request.log.warn({ email }, 'sign-in refused: the IdP sent no email_verified claim and sso.require_email_verified is true');
      return sendErrorPage(
        reply,
        403,
        'sso_email_unverified',
        'The sign-in provider did not say your e-mail address is verified (no email_verified claim). An administrator can set sso.require_email_verified: false for an IdP that never sends it, such as Microsoft Entra ID.',
        again(login.returnTo),
      );
    }
    // A revocation in force wins over a working IdP sign-in (an IdP account believed
    // compromised is exactly what a user revocation is for); checked before anything is written.
    const revoked = sessions.revocationOf(email);
    if (revoked) {
      request.log.warn({ email, revoked_until: revocationEnd(revoked.expiresAt) }, 'sign-in refused: the user is revoked');
      const end = revocationEnd(revoked.expiresAt);
      return sendErrorPage(reply, 403, 'user_revoked', `Port has revoked your access ${end === null ? 'until an administrator lifts it' : `until ${end}`}; ask an administrator.`);
    }
    // Deactivation in Port (by SCIM or otherwise) wins over a working IdP sign-in. For a
    // SCIM-provisioned person SCIM is authoritative for `active` and `groups`: the sign-in
    // neither re-activates them nor brings back a group SCIM removed; the ID token's groups
    // count only for people SCIM does not manage. One read-modify-write, so a concurrent
    // SCIM deactivation is never overwritten by a stale read.
    const name = typeof profile.name === 'string' && profile.name.trim() ? profile.name.trim().slice(0, 200) : undefined;
    const user = await deps.store.users.update(email, (current): UserRecord | undefined => {
      if (current && !current.active) return undefined;
      if (current?.source === 'scim') return { ...current, updatedAt: now(), ...(current.name || !name ? {} : { name }) };
      return { email, active: true, groups: groupsFrom(profile[sso.groupsClaim]), updatedAt: now(), source: 'sso', ...(name ? { name } : {}) };
    });
    if (!user || !user.active) {
      return sendErrorPage(reply, 403, 'user_inactive', 'Your account is deactivated in Port; ask an administrator.');
    }
    // A new session on every sign-in (never reuse one the browser brought: fixation).
    await sessions.close(request);
    reply.header('set-cookie', await sessions.open(user));
    request.log.info({ email, groups: user.groups }, 'signed in');
    return securityHeaders(reply).redirect(sessions.safeReturnTo(login.returnTo) ?? sessions.home, 303);
  });

  app.post('/logout', { bodyLimit: 16 * 1024 }, async (request, reply) => {
    const who = await sessions.current(request);
    if (who) {
      const body = (request.body ?? {}) as Record<string, unknown>;
      if (!sessions.csrfOk(request, who.session, body.csrf)) {
        return sendErrorPage(reply, 403, 'csrf_failed', 'This form did not come from Port (its security token is missing or wrong); reload the page and try again.', { viewer: who.viewer });
      }
      await sessions.close(request);
    }
    reply.header('set-cookie', sessions.clearSessionCookie());
    return sendPage(
      reply,
      200,
      'Signed out',
      html`<h1>You are signed out</h1><p><a href="/login?return_to=${encodeURIComponent(sessions.home)}">Sign in again</a></p>`,
    );
  });

  return sessions;
}

/** Every value of cookie `name` in a `Cookie` header. */
function cookieValues(header: string | undefined, name: string): string[] {
  if (!header) return [];
  const values: string[] = [];
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) values.push(part.slice(eq + 1).trim());
  }
  return values;
}

/**
 * `email_verified` as a boolean: true/false, or their string forms (some IdPs' userinfo
 * answers send strings, e.g. Amazon Cognito); anything else is undefined (not asserted).
 */
function emailVerified(claim: unknown): boolean | undefined {
  if (claim === true || claim === 'true') return true;
  if (claim === false || claim === 'false') return false;
  return undefined;
}

/** The groups claim: an array of strings (others dropped), a single string, or absent → []. */
export function groupsFrom(claim: unknown): string[] {
  const list = Array.isArray(claim) ? claim : typeof claim === 'string' ? [claim] : [];
  return [...new Set(list.filter((g): g is string => typeof g === 'string' && g.length > 0 && g.length <= 256))];
}

/**
 * Port's server registers @fastify/formbody; a bare Fastify app (tests, or SSO
 * mounted elsewhere) gets a minimal urlencoded parser so the forms still work.
 */
export function ensureFormParser(app: FastifyInstance): void {
  if (app.hasContentTypeParser('application/x-www-form-urlencoded')) return;
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: 64 * 1024 }, (_req, body, done) => {
    done(null, Object.fromEntries(new URLSearchParams(body as string)));
  });
}
