import type { UserRecord } from '../records/approvals.js';
import { PortError } from '../../errors.js';

/**
 * SCIM 2.0 provisioning state (src/scim), the store's `scim` repository. SCIM users and groups
 * live in their own tables; each write also re-derives, in the same transaction, the
 * Port `UserRecord` of every person it touches (User ids are lower-cased e-mails), so
 * Cedar's `User in [Group]` and `active` read the new state on the next decision.
 * Times are milliseconds since the epoch.
 */
export interface ScimStore {
  /** Creates a SCIM user; throws ScimConflictError when `userName` (case-insensitive) or `email` is taken. */
  createUser(user: ScimUserRecord): Promise<ScimWriteResult>;
  /**
   * Replaces a SCIM user while its stored version is `expectedVersion` (compare-and-set);
   * `conflict` when it changed meanwhile, `not_found` when it is gone.
   */
  replaceUser(user: ScimUserRecord, expectedVersion: number): Promise<ScimWriteResult | 'conflict' | 'not_found'>;
  /** Deletes a SCIM user and their memberships; `not_found` when there was none. */
  deleteUser(id: string): Promise<ScimWriteResult | 'not_found'>;
  getUser(id: string): Promise<ScimUserRecord | undefined>;
  /** Users matching every given field, ordered by creation; `total` counts all matches. */
  listUsers(query: ScimUserQuery): Promise<ScimPage<ScimUserRecord>>;

  /** Creates a SCIM group; throws ScimConflictError when `displayName` (case-insensitive) is taken. */
  createGroup(group: ScimGroupRecord): Promise<ScimWriteResult>;
  replaceGroup(group: ScimGroupRecord, expectedVersion: number): Promise<ScimWriteResult | 'conflict' | 'not_found'>;
  deleteGroup(id: string): Promise<ScimWriteResult | 'not_found'>;
  getGroup(id: string): Promise<ScimGroupRecord | undefined>;
  listGroups(query: ScimGroupQuery): Promise<ScimPage<ScimGroupRecord>>;
}

export interface ScimUserRecord {
  /** Port-assigned, opaque (RFC 7643 §3.1). */
  id: string;
  userName: string;
  externalId?: string;
  /** The Port identity (lower-cased e-mail) this user maps to; absent when it has none. */
  email?: string;
  /** The person's display name for Port's pages. */
  name?: string;
  active: boolean;
  /** The SCIM attributes as accepted (core and enterprise), without id, meta and groups. */
  attributes: Record<string, unknown>;
  created: number;
  lastModified: number;
  /** Incremented on every write; the ETag (RFC 7644 §3.14). */
  version: number;
}

export interface ScimGroupRecord {
  id: string;
  displayName: string;
  externalId?: string;
  /** Member SCIM user ids (no nested groups). */
  members: string[];
  created: number;
  lastModified: number;
  version: number;
}

/** How a write changed the Port users it touched (before absent: the person was unknown). */
export interface ScimAccessChange {
  email: string;
  before?: UserRecord;
  after: UserRecord;
}

export interface ScimWriteResult {
  changes: ScimAccessChange[];
}

export interface ScimUserQuery {
  id?: string;
  /** Compared case-insensitively (RFC 7643 §4.1.1: userName is not caseExact). */
  userName?: string;
  externalId?: string;
  /** Lower-cased e-mail (the Port identity). */
  email?: string;
  offset: number;
  limit: number;
}

export interface ScimGroupQuery {
  id?: string;
  /** Compared case-insensitively. */
  displayName?: string;
  externalId?: string;
  /** Groups that have this SCIM user id as a member. */
  member?: string;
  offset: number;
  limit: number;
}

export interface ScimPage<T> {
  total: number;
  items: T[];
}

/** A SCIM write would break a uniqueness rule (RFC 7644 §3.12 `uniqueness`, 409). */
export class ScimConflictError extends PortError {
  constructor(message: string) {
    super('uniqueness', message, 409);
  }
}

/** A group names a member that is not a provisioned SCIM user (RFC 7644 §3.12 `invalidValue`). */
export class ScimUnknownMemberError extends PortError {
  constructor(readonly memberId: string) {
    super('invalidValue', 'A group member is not a provisioned user of this SCIM endpoint (nested groups are not supported).', 400);
  }
}
