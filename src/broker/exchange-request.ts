import { OAuthError } from '../errors.js';

/** RFC 8693 §2.1 identifiers. */
export const TOKEN_EXCHANGE_GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
export const JWT_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:jwt';
export const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';

const SCOPE_TOKEN = /^[a-z0-9][a-z0-9_-]{0,63}$/;
const MAX_SCOPES = 32;

export interface ExchangeRequest {
  subjectToken: string;
  scopes: string[];
  audience?: string;
}

/**
 * Checks an RFC 8693 token-exchange request's parameters. Every problem is
 * `invalid_request` (or `unsupported_grant_type`, `invalid_scope`, `invalid_target`)
 * with a sentence naming the parameter; the subject token is never echoed.
 */
export function parseExchangeRequest(body: Record<string, unknown>): ExchangeRequest {
  const get = (name: string): string | undefined => {
    const v = body[name];
    if (v === undefined) return undefined;
    // RFC 6749 §3.2: parameters MUST NOT be included more than once.
    if (typeof v !== 'string') throw new OAuthError('invalid_request', `The ${name} parameter must appear once, as a string.`);
    return v;
  };
  const grantType = get('grant_type');
  if (grantType === undefined) throw new OAuthError('invalid_request', 'The grant_type parameter is missing.');
  if (grantType !== TOKEN_EXCHANGE_GRANT) {
    throw new OAuthError('unsupported_grant_type', `Only grant_type=${TOKEN_EXCHANGE_GRANT} is supported.`);
  }
  const subjectToken = get('subject_token');
  if (!subjectToken) throw new OAuthError('invalid_request', 'The subject_token parameter is missing.');
  const subjectTokenType = get('subject_token_type');
  if (subjectTokenType === undefined) throw new OAuthError('invalid_request', 'The subject_token_type parameter is missing.');
  if (subjectTokenType !== JWT_TOKEN_TYPE) {
    throw new OAuthError('invalid_request', `The subject_token_type must be ${JWT_TOKEN_TYPE} (a Buildkite OIDC token).`);
  }
  const requested = get('requested_token_type');
  if (requested !== undefined && requested !== ACCESS_TOKEN_TYPE && requested !== JWT_TOKEN_TYPE) {
    throw new OAuthError('invalid_request', `The requested_token_type must be ${ACCESS_TOKEN_TYPE}.`);
  }
  if (get('actor_token') !== undefined) {
    throw new OAuthError('invalid_request', 'Delegation (actor_token) is not supported.');
  }
  if (get('resource') !== undefined) {
    throw new OAuthError('invalid_target', 'The resource parameter is not supported; name the audience instead.');
  }
  const scopeText = get('scope');
  const scopes: string[] = [];
  if (scopeText !== undefined && scopeText.trim() !== '') {
    for (const s of scopeText.trim().split(/ +/)) {
      if (!SCOPE_TOKEN.test(s)) throw new OAuthError('invalid_scope', `The scope "${s.slice(0, 64)}" is not a grant name.`);
      if (!scopes.includes(s)) scopes.push(s);
    }
    if (scopes.length > MAX_SCOPES) throw new OAuthError('invalid_scope', `At most ${MAX_SCOPES} scopes may be requested at once.`);
  }
  const audience = get('audience');
  return { subjectToken, scopes, ...(audience === undefined ? {} : { audience }) };
}
