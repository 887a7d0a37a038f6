import { request as httpRequest, type OutgoingHttpHeaders } from 'node:http';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, SignJWT, type JWK } from 'jose';
import { randomUUID } from 'node:crypto';
import { createProof, type HostKey } from '../../src/dpop/host-key.js';
import { accessTokenHash } from '../../src/dpop/proof-verifier.js';
import { PortTokenIssuer } from '../../src/issuer/port-token.js';
import type { SimJob } from '../../src/sim/types.js';
import { startHarness, type Harness } from '../helpers/port-harness.js';
import { RELAY_POLICIES, UPSTREAM_SECRET, type RelayHarness } from '../helpers/relay-harness.js';
import { startRecordingUpstream } from '../helpers/relay/recording-upstream.js';

export { createProof };

/** A fresh ES256 host key, as loadOrCreateHostKey would give (without a file). */
export async function newHostKey(): Promise<HostKey> {
  const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
  const full = await exportJWK(publicKey);
  const publicJwk: JWK = { kty: full.kty!, crv: full.crv!, x: full.x!, y: full.y! };
  return { alg: 'ES256', jkt: await calculateJwkThumbprint(publicJwk, 'sha256'), publicJwk, privateKey };
}

/** An Ed25519 key: its public JWK, thumbprint and private key. */
export async function newEd25519Key(): Promise<{ publicJwk: JWK; jkt: string; privateKey: CryptoKey }> {
  const { publicKey, privateKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519', extractable: true });
  const full = await exportJWK(publicKey);
  const publicJwk: JWK = { kty: full.kty!, crv: full.crv!, x: full.x! };
  return { publicJwk, jkt: await calculateJwkThumbprint(publicJwk, 'sha256'), privateKey };
}

/**
 * A proof with any header and claims, signed with `signWith` under `alg` (jose's SignJWT):
 * the attack corpus bends one thing at a time from a valid proof.
 */
export async function craftProof(o: {
  signWith: CryptoKey | Uint8Array;
  alg: string;
  header: Record<string, unknown>;
  claims: Record<string, unknown>;
}): Promise<string> {
  return new SignJWT(o.claims).setProtectedHeader({ alg: o.alg, ...o.header }).sign(o.signWith);
}

/** The claims of a valid proof for a request (to bend in the attack corpus). */
export function proofClaims(method: string, htu: string, token?: string, now = Date.now()): Record<string, unknown> {
  return { htm: method, htu, iat: Math.floor(now / 1000), jti: randomUUID(), ...(token !== undefined ? { ath: accessTokenHash(token) } : {}) };
}

/** base64url JSON, for hand-built (unsigned or malformed) proofs. */
export function b64json(v: unknown): string {
  return Buffer.from(JSON.stringify(v)).toString('base64url');
}

/** A Port token for `job` bound to `jkt`, minted by the server's own issuer (as the exchange would mint it). */
export async function boundToken(h: Harness, job: SimJob, jkt: string | undefined, scopes: string[] = []): Promise<string> {
  const verified = await h.port.verifier.verify(await h.sim.mintToken(job, { audience: h.audience }));
  const issuer = new PortTokenIssuer(h.port.keys, h.config.server.publicUrl);
  const minted = await issuer.mint(verified.identity, { audience: h.config.issuer.audiences[0]!, scopes, ttl: 600, ...(jkt !== undefined ? { jkt } : {}) });
  return minted.token;
}

export interface RawAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: any;
}

/** An HTTP request with headers exactly as given (an array value is sent as repeated fields). */
export function rawRequest(url: string, method: string, headers: OutgoingHttpHeaders, body?: string): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let parsed: unknown = text;
        try {
          parsed = text ? JSON.parse(text) : undefined;
        } catch {
          // not JSON
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: parsed });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * The relay harness (test/helpers/relay-harness.ts) with `server` settings of the test's own:
 * the attack corpus sends more refusals from one address than the default refusal limit
 * allows, and CLI tests need a public_url that is Port's real address.
 */
export async function startDpopRelay(
  server: Record<string, unknown> = {},
  moreUpstreams: Record<string, unknown> = {},
  policies: Record<string, string> = RELAY_POLICIES,
): Promise<RelayHarness> {
  const upstream = await startRecordingUpstream();
  process.env.PORT_TEST_UPSTREAM_SECRET = UPSTREAM_SECRET;
  const files = { url: `${upstream.url}/base`, timeout: 2, connect_timeout: 2, max_body: '1MiB', inject: { bearer: 'env:PORT_TEST_UPSTREAM_SECRET' } };
  const h = await startHarness({
    policies,
    config: {
      server: { listen: '127.0.0.1:0', public_url: 'https://port.acme.test', log_level: 'silent', refusal_rate_limit: { burst: 10_000, per_minute: 10_000 }, ...server },
      relay: { decision_cache_ttl: 30, allow_log_window: 3600 },
      upstreams: { files, ...moreUpstreams },
    },
  });
  return {
    ...h,
    upstream,
    async token() {
      throw new Error('use boundToken() or the exchange');
    },
    relayUrl: (path) => `${h.url}/relay${path}`,
    async close() {
      await h.close();
      await upstream.close();
    },
  };
}
