/**
 * SCIM 2.0 protocol edges over HTTP against a running Port (RFC 7644): bearer auth,
 * "not configured" means no endpoint, discovery, filters Port answers and refuses,
 * pagination, uniqueness, body limits, content types, ETags.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHarness, type Harness } from '../helpers/port-harness.js';
import { ERROR_SCHEMA, GROUP_SCHEMA, oktaUser, scimClient, startScimHarness, type ScimClient } from './scim-client.js';

let h: Harness;
let scim: ScimClient;
const q = (filter: string) => encodeURIComponent(filter);

beforeAll(async () => {
  h = await startScimHarness();
  scim = scimClient(h.url);
});
afterAll(async () => {
  await h?.close();
});

function expectScimError(r: { status: number; body: any; headers: Headers }, status: number, scimType?: string) {
  expect(r.status).toBe(status);
  expect(r.headers.get('content-type')).toMatch(/^application\/scim\+json/);
  expect(r.body.schemas).toEqual([ERROR_SCHEMA]);
  expect(r.body.status).toBe(String(status));
  if (scimType) expect(r.body.scimType).toBe(scimType);
  else expect(r.body.scimType).toBeUndefined();
  expect(typeof r.body.detail).toBe('string');
}

describe('authentication', () => {
  it('refuses a missing, wrong or non-bearer token with a SCIM 401 and changes nothing', async () => {
    for (const client of [scimClient(h.url, null), scimClient(h.url, 'wrong-token'), scimClient(h.url, `${'x'}${SCIM_TOKEN_SUFFIX}`)]) {
      const r = await client.post('/Users', oktaUser('intruder@acme.test'));
      expectScimError(r, 401);
      expect(r.headers.get('www-authenticate')).toMatch(/^Bearer/);
    }
    const basic = await scimClient(h.url, null).get('/Users', { authorization: `Basic ${Buffer.from(`x:${'scim'}`).toString('base64')}` });
    expectScimError(basic, 401);
    // Unknown paths are refused before they are found: no probing without the token.
    expectScimError(await scimClient(h.url, 'wrong').get('/Nope'), 401);
    expect((await scim.get(`/Users?filter=${q('userName eq "intruder@acme.test"')}`)).body.totalResults).toBe(0);
    expect(await h.port.store.users.get('intruder@acme.test')).toBeUndefined();
  });

  it('has no /scim/v2 at all when scim: is not configured', async () => {
    const plain = await startHarness();
    try {
      const r = await scimClient(plain.url).get('/Users');
      expect(r.status).toBe(404);
      expect(r.body.error).toBe('not_found');
    } finally {
      await plain.close();
    }
  });
});
const SCIM_TOKEN_SUFFIX = 'scim-test-token-3f1e9a7c5b2d4e6f';

describe('discovery (RFC 7644 §4)', () => {
  it('serves ServiceProviderConfig, ResourceTypes and Schemas', async () => {
    const spc = await scim.get('/ServiceProviderConfig');
    expect(spc.status).toBe(200);
    expect(spc.body).toMatchObject({ patch: { supported: true }, bulk: { supported: false }, filter: { supported: true, maxResults: 200 }, etag: { supported: true } });
    expect(spc.body.authenticationSchemes[0].type).toBe('oauthbearertoken');
    const types = await scim.get('/ResourceTypes');
    expect(types.body.totalResults).toBe(2);
    expect(types.body.Resources.map((r: any) => r.endpoint).sort()).toEqual(['/Groups', '/Users']);
    expect((await scim.get('/ResourceTypes/User')).body.schemaExtensions[0].schema).toBe('urn:ietf:params:scim:schemas:extension:enterprise:2.0:User');
    const schemas = await scim.get('/Schemas');
    expect(schemas.body.Resources.map((s: any) => s.id)).toEqual([
      'urn:ietf:params:scim:schemas:core:2.0:User',
      'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User',
      GROUP_SCHEMA,
    ]);
    const user = await scim.get('/Schemas/urn:ietf:params:scim:schemas:core:2.0:User');
    expect(user.body.attributes.find((a: any) => a.name === 'userName')).toMatchObject({ uniqueness: 'server', required: true });
    expectScimError(await scim.get('/Schemas/urn:nope'), 404);
  });
});

describe('Users', () => {
  it('creates with 201, Location, meta and ETag; never returns or stores the password', async () => {
    const r = await scim.post('/Users', oktaUser('create@acme.test'));
    expect(r.status).toBe(201);
    expect(r.headers.get('location')).toBe(`https://port.acme.test/scim/v2/Users/${r.body.id}`);
    expect(r.body.meta).toMatchObject({ resourceType: 'User', location: r.headers.get('location'), version: 'W/"1"' });
    expect(r.headers.get('etag')).toBe('W/"1"');
    expect(r.body.password).toBeUndefined();
    expect(JSON.stringify(await h.port.store.scim.getUser(r.body.id))).not.toContain('never-stored');
    const got = await scim.get(`/Users/${r.body.id}`);
    expect(got.status).toBe(200);
    expect(got.body.userName).toBe('create@acme.test');
  });

  it('refuses a duplicate userName case-insensitively with 409 uniqueness', async () => {
    expect((await scim.post('/Users', oktaUser('dup@acme.test'))).status).toBe(201);
    const again = await scim.post('/Users', { ...oktaUser('other@acme.test'), userName: 'DUP@Acme.Test' });
    expectScimError(again, 409, 'uniqueness');
    expect((await scim.get(`/Users?filter=${q('userName eq "dup@acme.test"')}`)).body.totalResults).toBe(1);
  });

  it('refuses a resource without userName, with a wrong schema, or not JSON, with 400', async () => {
    const { userName: _u, ...noName } = oktaUser('x@acme.test');
    expectScimError(await scim.post('/Users', noName), 400, 'invalidValue');
    expectScimError(await scim.post('/Users', { ...oktaUser('y@acme.test'), schemas: ['urn:example:nope'] }), 400, 'invalidSyntax');
    expectScimError(await scim.post('/Users', '{"userName": '), 400, 'invalidSyntax');
    expectScimError(await scim.post('/Users', [oktaUser('z@acme.test')]), 400, 'invalidSyntax');
    expectScimError(await scim.request('POST', '/Users', 'userName=x', { 'content-type': 'text/plain' }), 415);
  });

  it('accepts application/json as well as application/scim+json', async () => {
    const r = await scim.request('POST', '/Users', JSON.stringify(oktaUser('json@acme.test')), { 'content-type': 'application/json' });
    expect(r.status).toBe(201);
  });

  it('refuses an oversized body with 413 and stores nothing', async () => {
    const big = { ...oktaUser('big@acme.test'), title: 'x'.repeat(1024 * 1024 + 10) };
    expectScimError(await scim.post('/Users', big), 413);
    expect((await scim.get(`/Users?filter=${q('userName eq "big@acme.test"')}`)).body.totalResults).toBe(0);
  });

  it('answers 404 for an unknown id on every method', async () => {
    expectScimError(await scim.get('/Users/00000000-0000-4000-8000-000000000000'), 404);
    expectScimError(await scim.put('/Users/nope', oktaUser('nope@acme.test')), 404);
    expectScimError(await scim.patch('/Users/nope', [{ op: 'replace', path: 'active', value: false }]), 404);
    expectScimError(await scim.delete('/Users/nope'), 404);
  });

  it('honours If-Match (RFC 7644 §3.14): a stale version is refused with 412', async () => {
    const u = (await scim.post('/Users', oktaUser('etag@acme.test'))).body;
    const ok = await scim.patch(`/Users/${u.id}`, [{ op: 'replace', path: 'displayName', value: 'E One' }], { 'if-match': 'W/"1"' });
    expect(ok.status).toBe(200);
    expect(ok.headers.get('etag')).toBe('W/"2"');
    const stale = await scim.patch(`/Users/${u.id}`, [{ op: 'replace', path: 'displayName', value: 'E Two' }], { 'if-match': 'W/"1"' });
    expectScimError(stale, 412);
    expect((await scim.get(`/Users/${u.id}`)).body.displayName).toBe('E One');
  });
});

describe('filters and pagination (RFC 7644 §3.4.2)', () => {
  let ids: string[] = [];
  beforeAll(async () => {
    ids = [];
    for (let i = 0; i < 5; i++) ids.push((await scim.post('/Users', { ...oktaUser(`page${i}@paging.test`), externalId: `ext-page-${i}` })).body.id);
  });

  it('filters by userName (case-insensitively), externalId and id', async () => {
    const byName = await scim.get(`/Users?filter=${q('userName eq "PAGE2@paging.test"')}&startIndex=1&count=100`);
    expect(byName.status).toBe(200);
    expect(byName.body).toMatchObject({ schemas: ['urn:ietf:params:scim:api:messages:2.0:ListResponse'], totalResults: 1, itemsPerPage: 1, startIndex: 1 });
    expect(byName.body.Resources[0].id).toBe(ids[2]);
    expect((await scim.get(`/Users?filter=${q('externalId eq "ext-page-3"')}`)).body.Resources[0].id).toBe(ids[3]);
    // externalId is caseExact (RFC 7643 §3.1).
    expect((await scim.get(`/Users?filter=${q('externalId eq "EXT-PAGE-3"')}`)).body.totalResults).toBe(0);
    expect((await scim.get(`/Users?filter=${q(`id eq "${ids[4]}" and userName eq "page4@paging.test"`)}`)).body.totalResults).toBe(1);
    expect((await scim.get(`/Users?filter=${q('UserName EQ "page1@paging.test"')}`)).body.totalResults).toBe(1);
    const none = await scim.get(`/Users?filter=${q('userName eq "nobody@paging.test"')}`);
    expect(none.body).toMatchObject({ totalResults: 0, itemsPerPage: 0, Resources: [] });
  });

  it('refuses filters it cannot answer exactly with 400 invalidFilter', async () => {
    for (const f of [
      'userName sw "page"',
      'userName eq "a" or userName eq "b"',
      'title eq "x"',
      'userName eq',
      'emails[type eq "work"].value eq "page1@paging.test"',
      'userName eq "a" and userName eq "b"',
      'not (userName eq "a")',
      'userName eq true',
      'this is not a filter',
    ]) {
      expectScimError(await scim.get(`/Users?filter=${q(f)}`), 400, 'invalidFilter');
    }
    expectScimError(await scim.get('/Users?filter='), 400, 'invalidFilter');
  });

  it('pages with startIndex and count; totalResults counts every match', async () => {
    const all = (await scim.get('/Users?count=200')).body;
    const total = all.totalResults as number;
    expect(total).toBeGreaterThanOrEqual(5);
    const second = (await scim.get('/Users?startIndex=2&count=2')).body;
    expect(second).toMatchObject({ totalResults: total, itemsPerPage: 2, startIndex: 2 });
    expect(second.Resources.map((r: any) => r.id)).toEqual(all.Resources.slice(1, 3).map((r: any) => r.id));
    // count=0: only totalResults (RFC 7644 §3.4.2.4); startIndex < 1 is 1; a negative count is 0.
    expect((await scim.get('/Users?count=0')).body).toMatchObject({ totalResults: total, itemsPerPage: 0, Resources: [] });
    expect((await scim.get('/Users?startIndex=0&count=1')).body).toMatchObject({ startIndex: 1, itemsPerPage: 1 });
    expect((await scim.get('/Users?count=-5')).body.itemsPerPage).toBe(0);
    const past = (await scim.get(`/Users?startIndex=${total + 1}`)).body;
    expect(past).toMatchObject({ totalResults: total, itemsPerPage: 0, Resources: [] });
    // More than maxResults is capped.
    expect((await scim.get('/Users?count=100000')).body.itemsPerPage).toBeLessThanOrEqual(200);
    expectScimError(await scim.get('/Users?count=ten'), 400, 'invalidValue');
    expectScimError(await scim.get('/Users?startIndex=1.5'), 400, 'invalidValue');
  });

  it('honours attributes and excludedAttributes', async () => {
    const r = await scim.get(`/Users/${ids[0]}?attributes=userName`);
    expect(r.body.userName).toBe('page0@paging.test');
    expect(r.body.emails).toBeUndefined();
    expect(r.body.id).toBe(ids[0]);
  });
});

describe('Groups', () => {
  it('creates, filters by displayName (Entra asks with excludedAttributes=members), refuses duplicates and unknown members', async () => {
    const user = (await scim.post('/Users', oktaUser('member@groups.test'))).body;
    const g = await scim.post('/Groups', { schemas: [GROUP_SCHEMA], displayName: 'auditors', members: [{ value: user.id }] });
    expect(g.status).toBe(201);
    expect(g.headers.get('location')).toBe(`https://port.acme.test/scim/v2/Groups/${g.body.id}`);
    const found = await scim.get(`/Groups?excludedAttributes=members&filter=${q('displayName eq "Auditors"')}`);
    expect(found.body.totalResults).toBe(1);
    expect(found.body.Resources[0].members).toBeUndefined();
    expect((await scim.get(`/Groups/${g.body.id}?excludedAttributes=members`)).body.members).toBeUndefined();
    expect((await scim.get(`/Groups?filter=${q(`id eq "${g.body.id}" and members[value eq "${user.id}"]`)}`)).body.totalResults).toBe(1);
    expectScimError(await scim.post('/Groups', { schemas: [GROUP_SCHEMA], displayName: 'AUDITORS' }), 409, 'uniqueness');
    expectScimError(await scim.post('/Groups', { schemas: [GROUP_SCHEMA], displayName: 'ghosts', members: [{ value: 'no-such-user' }] }), 400, 'invalidValue');
    expect((await scim.get(`/Groups?filter=${q('displayName eq "ghosts"')}`)).body.totalResults).toBe(0);
    expectScimError(await scim.patch(`/Groups/${g.body.id}`, [{ op: 'add', path: 'members', value: [{ value: 'no-such-user' }] }]), 400, 'invalidValue');
    expectScimError(await scim.patch(`/Groups/${g.body.id}`, [{ op: 'jump', path: 'members', value: [] }]), 400, 'invalidSyntax');
    expectScimError(await scim.request('PATCH', `/Groups/${g.body.id}`, { Operations: [{ op: 'add', path: 'members', value: [] }] }), 400, 'invalidSyntax');
    expectScimError(await scim.get(`/Groups?filter=${q('members[value eq "x"] or displayName eq "y"')}`), 400, 'invalidFilter');
  });
});
