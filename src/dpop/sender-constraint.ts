import { DpopError } from './errors.js';
import type { DpopVerifier, VerifiedProof } from './proof-verifier.js';

/** How a token came: `Authorization: Bearer` (RFC 6750), Basic's password (RFC 7617) or `Authorization: DPoP` (RFC 9449 §7.1). */
export type TokenScheme = 'bearer' | 'basic' | 'dpop';

/** The request a token came with, as a proof must name it. */
export interface ProofTarget {
  method: string;
  /** Port's public URL and the request path, without query (requestHtu). */
  url: string;
  /** Every value of the request's `DPoP` field (dpopFieldValues). */
  proofs: readonly string[];
}

/** RFC 9449 §7.1 `Authorization: DPoP <token>`; the token68 syntax of RFC 9110 §11.2. */
const DPOP_SCHEME = /^DPoP +([A-Za-z0-9._~+/-]+=*)$/i;

/** The token of `Authorization: DPoP <token>`, else undefined. */
export function dpopAuthorization(header: string | undefined): string | undefined {
  return header === undefined ? undefined : DPOP_SCHEME.exec(header)?.[1];
}

/** Every `DPoP` field of a request, from Node's `rawHeaders` (Node would fold repeats into one value). */
export function dpopFieldValues(rawHeaders: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    if (rawHeaders[i]!.toLowerCase() === 'dpop') out.push(rawHeaders[i + 1]!);
  }
  return out;
}

/**
 * The rule for a Port token at a protected resource (the relay, `/v1/credentials`):
 * - bound (`cnf.jkt`): it must come as `Authorization: DPoP` with a proof for this request,
 *   its access token and the bound key (RFC 9449 §7.1; §7.2: a resource that also takes
 *   Bearer MUST refuse a bound token presented as one, else binding buys nothing);
 * - not bound, with the DPoP scheme: refused too. RFC 9449 §7.1 defines the scheme for
 *   DPoP-bound tokens, and a proof checked against no key proves nothing; the message
 *   says to send the token as Bearer, which is what such a token is.
 * Checked on every request — never remembered with the token — since each proof is single
 * use. Throws DpopError with status 401 and its RFC 9449 §7.1 challenge.
 */
export async function checkSenderConstraint(
  verifier: DpopVerifier | undefined,
  presented: { scheme: TokenScheme; token: string },
  boundJkt: string | undefined,
  target: ProofTarget,
  now = Date.now(),
): Promise<VerifiedProof | undefined> {
  if (boundJkt === undefined) {
    if (presented.scheme !== 'dpop') return undefined;
    throw new DpopError('token_not_bound', 'This token is not bound to a key, so the DPoP scheme does not apply; send it as Authorization: Bearer.', {
      code: 'invalid_token',
      status: 401,
    });
  }
  if (presented.scheme !== 'dpop') {
    throw new DpopError(
      'bound_token_as_bearer',
      `This token is bound to a host key (RFC 9449): send it as Authorization: DPoP with a DPoP proof made with that key (port agent proxy does this), not as ${presented.scheme === 'basic' ? 'a Basic-auth password' : 'a Bearer token'}.`,
      { code: 'invalid_token', status: 401 },
    );
  }
  if (verifier === undefined) {
    // Fail closed: a Port built without a verifier can't check the binding, so it can't accept the token.
    throw new DpopError('proof_missing', 'This Port cannot check DPoP proofs, so it accepts no token bound to a key.', { status: 401 });
  }
  try {
    return await verifier.verify(target.proofs, { method: target.method, url: target.url, accessToken: presented.token, jkt: boundJkt }, now);
  } catch (err) {
    throw err instanceof DpopError ? err.atResource() : err;
  }
}
