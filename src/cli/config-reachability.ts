/**
 * `port config check --reachability`: can this machine reach what the config names?
 * One line per target, all checked at once, each with a short deadline: Buildkite's JWKS,
 * the Buildkite REST API (with `buildkite.api_token`), the SSO issuer's discovery
 * document, and every upstream. Nothing secret is printed: URLs lose their user info
 * and query, and the API token is only sent to `buildkite.api_url`.
 */
import { Agent, request } from 'undici';
import type { PortConfig } from '../config/config.js';
import { resolveSecretRef } from '../config/secret-ref.js';

export interface ReachLine {
  ok: boolean;
  /** A warning is reachable but worth a look (ok stays true). */
  warning?: boolean;
  text: string;
}

/**
 * The REST API scopes Port uses: builds and their creators, unblocking, members; and
 * `read_agents` when a pool requires the `buildkite` live check of its agents
 * (https://buildkite.com/docs/apis/rest-api/agents).
 */
export function apiScopes(config: Pick<PortConfig, 'pools'>): string[] {
  const live = Object.values(config.pools).some((p) => p.attestation.includes('buildkite'));
  return ['read_builds', 'write_builds', 'read_organizations', ...(live ? ['read_agents'] : [])];
}

export async function checkReachability(config: PortConfig, timeoutMs: number): Promise<ReachLine[]> {
  const dispatcher = new Agent({ connect: { timeout: timeoutMs }, headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
  const get = (url: string, init: { method?: 'GET' | 'HEAD'; headers?: Record<string, string> } = {}) =>
    request(url, {
      method: init.method ?? 'GET',
      headers: { 'user-agent': 'port-config-check', ...init.headers },
      dispatcher,
      signal: AbortSignal.timeout(timeoutMs),
    });
  const checks: Promise<ReachLine>[] = [];

  const jwks = config.buildkite.jwksUrl;
  checks.push(
    attempt(`buildkite.jwks_url: ${shown(jwks)}`, async () => {
      const res = await get(jwks, { headers: { accept: 'application/json' } });
      const body: unknown = await res.body.json().catch(() => undefined);
      if (res.statusCode !== 200) return { ok: false, text: `answered HTTP ${res.statusCode}; expected 200 with Buildkite's signing keys` };
      const keys = typeof body === 'object' && body !== null ? (body as { keys?: unknown }).keys : undefined;
      if (!Array.isArray(keys) || keys.length === 0) return { ok: false, text: 'answered 200 but not a JWK Set with keys; check buildkite.jwks_url / buildkite.issuer' };
      return { ok: true, text: `reachable, ${keys.length} signing key${keys.length === 1 ? '' : 's'}` };
    }),
  );

  const apiToken = config.buildkite.apiToken;
  if (apiToken !== undefined) {
    // "Get the current token" needs no scope and lists the token's scopes:
    // https://buildkite.com/docs/apis/rest-api/access-token
    const url = `${config.buildkite.apiUrl}/v2/access-token`;
    checks.push(
      attempt(`buildkite.api_url: ${shown(url)}`, async () => {
        let token: string;
        try {
          token = resolveSecretRef(apiToken.ref, apiToken.key, apiToken.baseDir);
        } catch {
          return { ok: false, text: `not checked: ${apiToken.key} does not resolve (see above)` };
        }
        const res = await get(url, { headers: { authorization: `Bearer ${token}`, accept: 'application/json' } });
        const body: unknown = await res.body.json().catch(() => undefined);
        if (res.statusCode === 401) return { ok: false, text: 'answered 401: Buildkite does not accept buildkite.api_token (revoked, expired or mistyped?)' };
        if (res.statusCode !== 200) return { ok: false, text: `answered HTTP ${res.statusCode}; expected 200 from Buildkite's REST API (is buildkite.api_url https://api.buildkite.com?)` };
        const scopes = typeof body === 'object' && body !== null ? (body as { scopes?: unknown }).scopes : undefined;
        const have = Array.isArray(scopes) ? scopes.filter((s): s is string => typeof s === 'string') : [];
        const missing = apiScopes(config).filter((s) => !have.includes(s));
        // The live check refuses every job of its pools without these: an error, not a warning.
        const live = Object.values(config.pools).filter((p) => p.attestation.includes('buildkite')).map((p) => p.key);
        const blocking = live.length > 0 ? missing.filter((s) => s === 'read_builds' || s === 'read_agents') : [];
        if (blocking.length > 0) {
          return { ok: false, text: `reachable, token accepted, but it lacks ${blocking.join(' and ')}, which the buildkite attestation of pool${live.length === 1 ? '' : 's'} ${live.join(', ')} needs; add the scope${blocking.length === 1 ? '' : 's'} to the token` };
        }
        if (missing.length > 0) {
          return { ok: true, warning: true, text: `reachable, token accepted, but it lacks the scope${missing.length === 1 ? '' : 's'} ${missing.join(', ')} that Port uses` };
        }
        return { ok: true, text: `reachable, token accepted with the scopes Port uses` };
      }),
    );
  }

  if (config.sso) {
    // OpenID Connect Discovery 1.0 §4: the issuer's /.well-known/openid-configuration.
    const url = `${config.sso.issuer}/.well-known/openid-configuration`;
    checks.push(
      attempt(`sso.issuer: ${shown(url)}`, async () => {
        const res = await get(url, { headers: { accept: 'application/json' } });
        const body: unknown = await res.body.json().catch(() => undefined);
        if (res.statusCode !== 200) return { ok: false, text: `answered HTTP ${res.statusCode}; expected the identity provider's discovery document` };
        const issuer = typeof body === 'object' && body !== null ? (body as { issuer?: unknown }).issuer : undefined;
        if (typeof issuer === 'string' && issuer.replace(/\/+$/, '') !== config.sso!.issuer) {
          return { ok: false, text: `names issuer ${JSON.stringify(issuer.slice(0, 200))}, not sso.issuer ${shown(config.sso!.issuer)}; sign-in would fail the issuer check` };
        }
        return { ok: true, text: 'reachable, discovery document found' };
      }),
    );
  }

  for (const u of Object.values(config.upstreams)) {
    // Any HTTP answer means the relay can connect; HEAD keeps it to the headers.
    checks.push(
      attempt(`upstreams.${u.name}: ${shown(u.url)}`, async () => {
        const res = await get(`${u.url}/`, { method: 'HEAD' });
        await res.body.dump();
        return { ok: true, text: `reachable (HEAD / answered HTTP ${res.statusCode})` };
      }),
    );
  }

  try {
    return await Promise.all(checks);
  } finally {
    await dispatcher.close().catch(() => undefined);
  }
}

/** Runs one check; a network failure is one line naming why. */
async function attempt(label: string, run: () => Promise<ReachLine>): Promise<ReachLine> {
  try {
    const r = await run();
    return { ...r, text: `${label}: ${r.text}` };
  } catch (err) {
    return { ok: false, text: `${label}: unreachable: ${networkReason(err)}` };
  }
}

function networkReason(err: unknown): string {
  const e = err as { name?: string; code?: string; cause?: { code?: string; message?: string }; message?: string };
  if (e.name === 'TimeoutError' || e.code === 'UND_ERR_CONNECT_TIMEOUT' || e.code === 'UND_ERR_HEADERS_TIMEOUT') return 'no answer in time';
  const code = e.cause?.code ?? e.code;
  switch (code) {
    case 'ECONNREFUSED':
      return 'connection refused (nothing listens there)';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'the host name does not resolve';
    case 'ECONNRESET':
      return 'the connection was reset';
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return 'no route to the host';
    default:
      if (typeof code === 'string' && /CERT|SSL|TLS/.test(code)) return `TLS failed (${code})`;
      return code ?? (e.message ?? 'failed').split('\n')[0]!;
  }
}

/** The URL without user info, query or fragment: what the line may show. */
function shown(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname === '/' ? '' : u.pathname}`;
  } catch {
    return '(not a URL)';
  }
}
