/**
 * A company IdP (a real `oidc-provider`, test/web/idp.ts) and Port's web routes over a
 * real SqliteStore, an ApprovalService and a fake Buildkite API, for the people-side
 * tests that need a fake Buildkite (the attack tests). The end-to-end test against
 * Port's real server and the Buildkite simulator is port-approvals.e2e.test.ts.
 */
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { fetch as undiciFetch, type Dispatcher } from 'undici';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { ApprovalService } from '../../src/approvals/approval-service.js';
import type { BuildkiteBuildSummary } from '../../src/approvals/buildkite-builds.js';
import type { ApprovalRequestRecord } from '../../src/store/records/approvals.js';
import { DecisionLog } from '../../src/audit/decision-log.js';
import { configFromObject, type PortConfig } from '../../src/config/config.js';
import { PolicyEngine } from '../../src/policy/engine.js';
import { RevocationList } from '../../src/revocation/revocation-list.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { webRoutes } from '../../src/web/approvals-pages.js';
import { APPROVAL_POLICIES } from '../helpers/approval-policies.js';
import { IDP_CLIENT_ID, IDP_CLIENT_SECRET, IDP_SCOPES, listening, startIdp, type IdpPerson } from './idp.js';
import { FakeBuildkite } from '../helpers/fake-buildkite.js';
export { FakeBuildkite };

export { IDP_USERS } from './idp.js';

export interface WebEnv {
  dir: string;
  /** Port's web base URL (also its public_url). */
  url: string;
  idpUrl: string;
  config: PortConfig;
  store: SqliteStore;
  bk: FakeBuildkite;
  approvals: ApprovalService;
  revocations: RevocationList;
  app: FastifyInstance;
  /** A blocked feature-branch build by dev@ and the pending approval request it opened. */
  openFeatureRequest(number: number, init?: Partial<BuildkiteBuildSummary>): Promise<ApprovalRequestRecord>;
  actions(): Promise<string[]>;
  /** Stops Port's web app and starts a fresh one (new process state) on the same URL and store. */
  restart(): Promise<void>;
  close(): Promise<void>;
}

export interface WebOptions {
  /** Extra keys for `sso:` (e.g. `require_email_verified`). */
  sso?: Record<string, unknown>;
  /** Extra keys for `issuer:` (e.g. `key_encryption_key`). */
  issuer?: Record<string, unknown>;
  /** The IdP's directory (default IDP_USERS). */
  users?: Record<string, IdpPerson>;
  /** Port's clock (the IdP keeps real time). */
  now?: () => number;
  /**
   * Serve Port over TLS with this key and certificate at `https://<host>:<port>` (its
   * public_url; `host` must resolve to 127.0.0.1 for the client, e.g. through a lookup
   * or Chromium's host-resolver rules). Default: plain http on 127.0.0.1.
   */
  tls?: { key: string; cert: string; host: string };
}

/** Starts the IdP and Port's web routes, each on its own 127.0.0.1 port. */
export async function startWeb(opts: WebOptions = {}): Promise<WebEnv> {
  const dir = mkdtempSync(join(tmpdir(), 'port-web-'));
  mkdirSync(join(dir, 'policies'));
  writeFileSync(join(dir, 'policies', 'approvals.cedar'), APPROVAL_POLICIES);
  writeFileSync(join(dir, 'sso-secret'), `${IDP_CLIENT_SECRET}\n`);

  // Port's socket first: the IdP needs Port's redirect URI, Port needs the IdP's issuer.
  const newServer = (): Server => (opts.tls ? (createHttpsServer({ key: opts.tls.key, cert: opts.tls.cert }) as unknown as Server) : createServer());
  let portServer = newServer();
  const local = await listening(portServer);
  const url = opts.tls ? `https://${opts.tls.host}:${new URL(local).port}` : local;
  const idp = await startIdp({ redirectUris: [`${url}/auth/callback`], ...(opts.users ? { users: opts.users } : {}) });
  const idpUrl = idp.url;

  const raw = {
    server: { listen: '127.0.0.1:0', public_url: url, log_level: 'silent' },
    store: { sqlite: './port.db' },
    buildkite: { organization: 'acme' },
    policies: './policies',
    approvals: { expire_after: '1h' },
    sso: { issuer: idpUrl, client_id: IDP_CLIENT_ID, client_secret: 'file:sso-secret', groups_claim: 'groups', scopes: IDP_SCOPES, session_ttl: '8h', ...opts.sso },
    ...(opts.issuer ? { issuer: opts.issuer } : {}),
  };
  const config = configFromObject(raw, join(dir, 'port.yaml'));
  const store = SqliteStore.open(join(dir, 'port.db'));
  const bk = new FakeBuildkite();
  const revocations = await RevocationList.open(store);
  const approvals = new ApprovalService({ config, policy: await PolicyEngine.open(config.policies), store, log: new DecisionLog(store), api: bk, revocations });

  const startApp = async (server: Server): Promise<FastifyInstance> => {
    const app = Fastify({
      logger: false,
      serverFactory: (handler) => {
        server.on('request', handler);
        return server;
      },
    });
    webRoutes(app, { config, store, approvals, publicUrl: url, revocations, ...(opts.now ? { now: opts.now } : {}) });
    await app.ready();
    return app;
  };
  let app = await startApp(portServer);

  return {
    dir,
    url,
    idpUrl,
    config,
    store,
    bk,
    approvals,
    revocations,
    get app() {
      return app;
    },
    async restart() {
      await app.close();
      portServer.closeAllConnections();
      await new Promise<void>((resolve) => (portServer.listening ? portServer.close(() => resolve()) : resolve()));
      const server = newServer();
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(Number(new URL(url).port), '127.0.0.1', () => resolve());
      });
      portServer = server;
      app = await startApp(server);
    },
    async openFeatureRequest(number, init = {}) {
      const build: BuildkiteBuildSummary = {
        id: `build-${number}`,
        number,
        branch: 'feature/login',
        tag: null,
        commit: '3f1c2a9be07d4c1e8a55b2f0c9d6e7a1b2c3d4e5',
        source: 'webhook',
        blocked: true,
        creator: { id: 'u-dev', name: 'Dana Dev', email: 'dev@acme.test' },
        jobs: [
          { id: `cmd-${number}`, type: 'script', state: 'passed' },
          { id: `block-${number}`, type: 'manual', state: 'blocked', label: 'Deploy to production?', step_key: 'deploy', unblockable: true },
        ],
        ...init,
      };
      bk.builds.set(`deploy/${number}`, build);
      await approvals.handleBlockedBuild('deploy', number);
      const request = await store.approvals.getByJob(`block-${number}`);
      if (!request) throw new Error(`build ${number} opened no approval request`);
      return request;
    },
    async actions() {
      return (await store.decisions.read(0, 1000)).map((e) => `${e.record.action}:${e.record.decision}`);
    },
    async close() {
      await app.close();
      await idp.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * A cookie-keeping HTTP client without a browser (the attack tests). Both servers
 * are on 127.0.0.1, and a browser's cookies ignore the port, so one jar is right.
 */
export class Agent {
  readonly cookies = new Map<string, string>();

  /** `dispatcher`: an undici dispatcher (e.g. trusting a test CA, resolving a test host name). */
  constructor(
    private readonly base: string,
    private readonly dispatcher?: Dispatcher,
  ) {}

  async request(pathOrUrl: string, init: { method?: string; form?: Record<string, string>; headers?: Record<string, string> } = {}): Promise<Response> {
    const target = new URL(pathOrUrl, this.base);
    const headers: Record<string, string> = { ...init.headers };
    if (this.cookies.size > 0) headers.cookie = [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
    if (init.form) headers['content-type'] = 'application/x-www-form-urlencoded';
    const method = init.method ?? (init.form ? 'POST' : 'GET');
    const body = init.form ? { body: new URLSearchParams(init.form).toString() } : {};
    const send = (): Promise<Response> =>
      this.dispatcher
        ? (undiciFetch(target, { method, headers, redirect: 'manual', dispatcher: this.dispatcher, ...body }) as unknown as Promise<Response>)
        : fetch(target, { method, headers, redirect: 'manual', ...body });
    let res: Response;
    try {
      res = await send();
    } catch (err) {
      // As a browser does (RFC 9112 §9.3.1): a GET on a kept-alive connection the server
      // closed meanwhile (a restarted Port) is sent again once on a new connection.
      if (method !== 'GET' || (err as { cause?: { code?: string } }).cause?.code !== 'UND_ERR_SOCKET') throw err;
      res = await send();
    }
    for (const line of res.headers.getSetCookie()) {
      const [pair, ...attrs] = line.split(';');
      const eq = pair!.indexOf('=');
      const name = pair!.slice(0, eq).trim();
      const value = pair!.slice(eq + 1).trim();
      const expired = attrs.some((a) => /^\s*max-age=0\s*$/i.test(a) || /^\s*expires=thu, 01 jan 1970/i.test(a));
      if (expired || value === '') this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
    return res;
  }

  /**
   * Signs in through Port's /login and the IdP's dev interactions (login, consent) by
   * following redirects and submitting the IdP's forms. Returns where Port sent us.
   * `atIdp` runs once when the IdP's sign-in form is up (the sign-in is in progress).
   */
  async signIn(email: string, returnTo?: string, opts: { atIdp?: () => Promise<void> } = {}): Promise<{ location: string | null; status: number }> {
    const res = (await this.walk(email, returnTo, { ...opts, stopAtCallback: false })) as Response;
    return { location: res.headers.get('location'), status: res.status };
  }

  /**
   * Like `signIn`, but stops when the IdP sends the browser back: returns the callback
   * URL (with its code and state) without visiting it.
   */
  async authorizeOnly(email: string, returnTo?: string): Promise<string> {
    return (await this.walk(email, returnTo, { stopAtCallback: true })) as string;
  }

  private async walk(email: string, returnTo: string | undefined, opts: { atIdp?: () => Promise<void>; stopAtCallback: boolean }): Promise<Response | string> {
    let atIdp = opts.atIdp;
    const port = new URL(this.base).origin;
    const isCallback = (u: URL) => u.origin === port && u.pathname === '/auth/callback';
    let url = new URL(returnTo === undefined ? '/login' : `/login?return_to=${encodeURIComponent(returnTo)}`, this.base);
    let res = await this.request(url.href);
    for (let hops = 0; hops < 30; hops++) {
      // Port's answer to the callback ends the sign-in (a redirect, or a refusal page).
      if (isCallback(url)) return res;
      if (res.status >= 300 && res.status < 400) {
        url = new URL(res.headers.get('location')!, url);
        if (opts.stopAtCallback && isCallback(url)) return url.href;
        res = await this.request(url.href);
        continue;
      }
      const body = await res.text();
      const action = /<form[^>]*action="([^"]+)"/.exec(body)?.[1];
      const prompt = /name="prompt" value="(\w+)"/.exec(body)?.[1];
      if (res.status !== 200 || !action || !prompt) throw new Error(`sign-in stuck at ${url.href} (${res.status}): ${body.slice(0, 300)}`);
      if (atIdp) {
        await atIdp();
        atIdp = undefined;
      }
      url = new URL(action.replace(/&amp;/g, '&'), url);
      res = await this.request(url.href, { form: prompt === 'login' ? { prompt, login: email, password: 'any' } : { prompt } });
    }
    throw new Error('sign-in did not finish');
  }
}

/** The CSRF token in a page's forms. */
export function csrfIn(page: string): string {
  const m = /name="csrf" value="([^"]+)"/.exec(page);
  if (!m) throw new Error('no csrf field on the page');
  return m[1]!;
}
