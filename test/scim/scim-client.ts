import { startHarness, type Harness } from '../helpers/port-harness.js';

export const SCIM_TOKEN = 'scim-test-token-3f1e9a7c5b2d4e6f';
export const USER_SCHEMA = 'urn:ietf:params:scim:schemas:core:2.0:User';
export const GROUP_SCHEMA = 'urn:ietf:params:scim:schemas:core:2.0:Group';
export const PATCH_OP = 'urn:ietf:params:scim:api:messages:2.0:PatchOp';
export const ERROR_SCHEMA = 'urn:ietf:params:scim:api:messages:2.0:Error';

export interface ScimResponse {
  status: number;
  body: any;
  headers: Headers;
}

/** A SCIM client as an IdP is one: bearer token, `application/scim+json`. */
/** `token: null` sends no Authorization header. */
export function scimClient(baseUrl: string, token: string | null = SCIM_TOKEN) {
  const request = async (method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<ScimResponse> => {
    const res = await fetch(`${baseUrl}/scim/v2${path}`, {
      method,
      headers: {
        accept: 'application/scim+json',
        ...(token !== null ? { authorization: `Bearer ${token}` } : {}),
        ...(body !== undefined ? { 'content-type': 'application/scim+json; charset=utf-8' } : {}),
        ...headers,
      },
      ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined, headers: res.headers };
  };
  return {
    request,
    get: (path: string, headers?: Record<string, string>) => request('GET', path, undefined, headers),
    post: (path: string, body: unknown, headers?: Record<string, string>) => request('POST', path, body, headers),
    put: (path: string, body: unknown, headers?: Record<string, string>) => request('PUT', path, body, headers),
    patch: (path: string, ops: unknown[], headers?: Record<string, string>) => request('PATCH', path, { schemas: [PATCH_OP], Operations: ops }, headers),
    delete: (path: string, headers?: Record<string, string>) => request('DELETE', path, undefined, headers),
  };
}

export type ScimClient = ReturnType<typeof scimClient>;

let n = 0;
/** A running Port (and Buildkite simulator) with SCIM on. */
export async function startScimHarness(opts: { policies?: Record<string, string>; extra?: (sim: Harness['sim']) => Record<string, unknown> } = {}): Promise<Harness> {
  const env = `PORT_TEST_SCIM_TOKEN_${process.pid}_${++n}`;
  process.env[env] = SCIM_TOKEN;
  return startHarness({
    ...(opts.policies ? { policies: opts.policies } : {}),
    config: (sim) => ({ scim: { token: `env:${env}` }, ...(opts.extra?.(sim) ?? {}) }),
  });
}

/** An Okta-style user (Okta's SCIM 2.0 guide, "Create Users"). */
export function oktaUser(email: string, given = 'Test', family = 'User') {
  return {
    schemas: [USER_SCHEMA],
    userName: email,
    name: { givenName: given, familyName: family },
    emails: [{ primary: true, value: email, type: 'work' }],
    displayName: `${given} ${family}`,
    locale: 'en-US',
    externalId: `00u${email.length}abc`,
    groups: [],
    password: 'never-stored-Passw0rd',
    active: true,
  };
}

/** An Entra-style user (Microsoft Learn, "Develop a SCIM endpoint…": Create User). */
export function entraUser(upn: string, mail: string) {
  return {
    schemas: [USER_SCHEMA, 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User'],
    externalId: upn.split('@')[0],
    userName: upn,
    active: true,
    emails: [{ primary: true, type: 'work', value: mail }],
    meta: { resourceType: 'User' },
    name: { formatted: 'Ana Lyst', familyName: 'Lyst', givenName: 'Ana' },
    roles: [],
    'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User': { department: 'Platform', employeeNumber: '42' },
  };
}
