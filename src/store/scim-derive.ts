import type { UserRecord } from './records/approvals.js';
import type { ScimAccessChange, ScimGroupRecord, ScimUserRecord } from './repositories/scim.js';

/**
 * What every ScimStore backend derives the same way, with no database: uniqueness keys,
 * the messages of uniqueness conflicts, and the Port UserRecord a SCIM write leaves for
 * each person it touches. Backends read the inputs and write the result in the same
 * transaction as the SCIM change; only this module decides what the result is.
 */

/**
 * Case-insensitive uniqueness key: userName (RFC 7643 §4.1.1) and a group's displayName
 * (RFC 7643 §4.2) are not caseExact, so "Ana" and "ana" are one name.
 */
export const foldKey = (s: string): string => s.normalize('NFC').toLowerCase();

/** The messages of ScimConflictError (RFC 7644 §3.12 `uniqueness`), one per rule. */
export const SCIM_CONFLICT = {
  userName: 'Another user already has this userName (compared case-insensitively).',
  email: 'Another user already has this e-mail address, which is their Port identity.',
  displayName: 'Another group already has this displayName (compared case-insensitively); it is the Cedar Group id.',
} as const;

/** A group's member ids without repeats, first occurrence first (a member listed twice is one member). */
export function uniqueMembers(members: readonly string[]): string[] {
  return [...new Set(members)];
}

/** The e-mails a write touches, each once, in the order given; undefined (a user without an e-mail) left out. */
export function touchedEmails(emails: readonly (string | undefined)[]): string[] {
  return [...new Set(emails.filter((e): e is string => e !== undefined))];
}

/** The SCIM user that maps to a person, and the displayNames of its groups (in the store's order). */
export interface ScimPerson {
  user: ScimUserRecord;
  groups: string[];
}

/**
 * The Port user of `email` after a SCIM write: SCIM is authoritative for `active` and
 * `groups` of a person it provisions. An e-mail no SCIM user maps to any more (deleted,
 * or its e-mail changed) stays known but inactive and group-less, so an SSO sign-in
 * cannot bring it back (src/web/sso.ts). Undefined when Port never knew the person and
 * SCIM does not provision them: nothing to write.
 */
export function derivePortUser(email: string, before: UserRecord | undefined, scim: ScimPerson | undefined, at: number): UserRecord | undefined {
  if (scim) {
    // An inactive person is in no group: a policy that forgets to test `active` still fails closed.
    const groups = scim.user.active ? scim.groups : [];
    const name = scim.user.name ?? before?.name;
    return { email, active: scim.user.active, groups, updatedAt: at, source: 'scim', ...(name ? { name } : {}) };
  }
  if (before) return { ...before, active: false, groups: [], updatedAt: at, source: 'scim' };
  return undefined;
}

/** How a write changed one person (no `before` when Port did not know them). */
export function accessChange(email: string, before: UserRecord | undefined, after: UserRecord): ScimAccessChange {
  return before ? { email, before, after } : { email, after };
}

/** A group's columns without its members (a backend that keeps members in their own table). */
export function withoutMembers(g: ScimGroupRecord): Omit<ScimGroupRecord, 'members'> {
  const { members: _members, ...row } = g;
  return row;
}
