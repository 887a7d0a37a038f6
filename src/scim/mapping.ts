/**
 * SCIM resources ↔ Port's SCIM records. A SCIM user maps to a Port identity (Cedar
 * `User`, a lower-cased e-mail): the primary e-mail, else the `work` one, else `userName`
 * when it is an e-mail address; a user with none of these is stored but can hold nothing.
 */
import type { SCIMMY } from 'scimmy';
import type { ScimGroupRecord, ScimUserRecord } from '../store/repositories/scim.js';
import { ScimError } from './errors.js';
import { scimmy } from './scimmy.js';

const EMAIL = /^[^\s@]+@[^\s@]+$/;
const MAX_NAME = 256;
/** Attributes Port never stores: server-assigned, read-only, or secret (RFC 7643 §4.1: password is never returned). */
const NOT_STORED = ['schemas', 'id', 'meta', 'groups', 'password'];

export const etag = (version: number): string => `W/"${version}"`;

/** SCIMMY's inbound coercion (required attributes, types, mutability), as SCIM errors. */
export function coerceIn<T extends SCIMMY.Types.Schema>(make: () => T): T {
  try {
    return make();
  } catch (err) {
    throw asScimError(err);
  }
}

/** A SCIMMY error (or the TypeError its coercion throws) as Port's ScimError. */
export function asScimError(err: unknown): Error {
  const S = scimmy();
  if (err instanceof ScimError) return err;
  if (err instanceof S.Types.Error) {
    const e = err as SCIMMY.Types.SCIMError;
    return new ScimError(e.status, e.scimType || (e.status === 404 ? 'not_found' : 'invalidValue'), e.message.slice(0, 300));
  }
  if (err instanceof TypeError) return new ScimError(400, 'invalidValue', err.message.slice(0, 300));
  return err instanceof Error ? err : new Error(String(err));
}

function plain(resource: object): Record<string, unknown> {
  const data = JSON.parse(JSON.stringify(resource)) as Record<string, unknown>;
  for (const key of NOT_STORED) delete data[key];
  return data;
}

export function userFromScim(resource: object, id: string, now: number, previous?: ScimUserRecord): ScimUserRecord {
  const data = plain(resource);
  const userName = data.userName;
  if (typeof userName !== 'string' || userName.trim() === '' || userName.length > MAX_NAME) {
    throw new ScimError(400, 'invalidValue', `userName must be a non-empty string of at most ${MAX_NAME} characters.`);
  }
  const externalId = typeof data.externalId === 'string' && data.externalId !== '' ? data.externalId : undefined;
  if (externalId !== undefined && externalId.length > MAX_NAME) throw new ScimError(400, 'invalidValue', `externalId may have at most ${MAX_NAME} characters.`);
  // RFC 7643 §4.1.1 leaves a missing `active` to the provider; IdPs always send it, so absent means active.
  const active = data.active !== false;
  const email = portEmail(data);
  const name = displayName(data);
  return {
    id,
    userName,
    ...(externalId !== undefined ? { externalId } : {}),
    ...(email !== undefined ? { email } : {}),
    ...(name !== undefined ? { name } : {}),
    active,
    attributes: data,
    created: previous?.created ?? now,
    lastModified: now,
    version: (previous?.version ?? 0) + 1,
  };
}

export function toScimUser(r: ScimUserRecord, base: string, attributes?: SCIMMY.Types.Filter): SCIMMY.Schemas.User {
  const S = scimmy();
  const data = {
    ...r.attributes,
    id: r.id,
    userName: r.userName,
    active: r.active,
    ...(r.externalId !== undefined ? { externalId: r.externalId } : {}),
    meta: { created: new Date(r.created), lastModified: new Date(r.lastModified), version: etag(r.version) },
  };
  return new S.Schemas.User(data, 'out', `${base}/Users`, attributes);
}

export function groupFromScim(resource: object, id: string, now: number, previous?: ScimGroupRecord): ScimGroupRecord {
  const data = plain(resource);
  const displayName = data.displayName;
  if (typeof displayName !== 'string' || displayName.trim() === '' || displayName.length > MAX_NAME) {
    throw new ScimError(400, 'invalidValue', `displayName must be a non-empty string of at most ${MAX_NAME} characters.`);
  }
  const externalId = typeof data.externalId === 'string' && data.externalId !== '' ? data.externalId : undefined;
  if (externalId !== undefined && externalId.length > MAX_NAME) throw new ScimError(400, 'invalidValue', `externalId may have at most ${MAX_NAME} characters.`);
  const members = new Set<string>();
  for (const m of Array.isArray(data.members) ? data.members : []) {
    const member = m as { value?: unknown; type?: unknown };
    if (typeof member.value !== 'string' || member.value === '') throw new ScimError(400, 'invalidValue', 'Every group member needs a "value" (the user\'s id).');
    if (typeof member.type === 'string' && member.type.toLowerCase() === 'group') {
      throw new ScimError(400, 'invalidValue', 'Port does not support nested groups; members must be users.');
    }
    members.add(member.value);
  }
  if (members.size > 100_000) throw new ScimError(400, 'tooMany', 'A group may have at most 100000 members.');
  return {
    id,
    displayName,
    ...(externalId !== undefined ? { externalId } : {}),
    members: [...members],
    created: previous?.created ?? now,
    lastModified: now,
    version: (previous?.version ?? 0) + 1,
  };
}

export function toScimGroup(r: ScimGroupRecord, base: string, attributes?: SCIMMY.Types.Filter): SCIMMY.Schemas.Group {
  const S = scimmy();
  const data = {
    id: r.id,
    displayName: r.displayName,
    ...(r.externalId !== undefined ? { externalId: r.externalId } : {}),
    ...(r.members.length > 0 ? { members: r.members.map((value) => ({ value, $ref: `${base}/Users/${value}`, type: 'User' })) } : {}),
    meta: { created: new Date(r.created), lastModified: new Date(r.lastModified), version: etag(r.version) },
  };
  return new S.Schemas.Group(data, 'out', `${base}/Groups`, attributes);
}

function portEmail(data: Record<string, unknown>): string | undefined {
  const emails = (Array.isArray(data.emails) ? data.emails : []) as { value?: unknown; primary?: unknown; type?: unknown }[];
  const pick = emails.find((e) => e.primary === true) ?? emails.find((e) => typeof e.type === 'string' && e.type.toLowerCase() === 'work');
  const candidates = [pick?.value, data.userName];
  for (const c of candidates) {
    if (typeof c !== 'string') continue;
    const email = c.trim().toLowerCase();
    if (EMAIL.test(email) && email.length <= 254) return email;
  }
  return undefined;
}

function displayName(data: Record<string, unknown>): string | undefined {
  const name = (typeof data.name === 'object' && data.name !== null ? data.name : {}) as Record<string, unknown>;
  const given = [name.givenName, name.familyName].filter((p): p is string => typeof p === 'string' && p.trim() !== '').join(' ');
  const value = [data.displayName, name.formatted, given].find((v): v is string => typeof v === 'string' && v.trim() !== '');
  return value?.trim().slice(0, 200);
}
