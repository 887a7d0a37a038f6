import type { SessionRecord, UserRecord } from '../records/approvals.js';

/** People Port knows (SSO sign-in, SCIM); ids are lower-cased e-mails. */
export interface UserStore {
  upsert(user: UserRecord): Promise<void>;
  get(email: string): Promise<UserRecord | undefined>;
  /**
   * Read-modify-write of one UserRecord in one transaction (no lost update against a
   * concurrent SCIM change): `change` gets the current record and returns the next one,
   * or undefined to leave it as it is. Resolves to the record as stored afterwards.
   */
  update(email: string, change: (current: UserRecord | undefined) => UserRecord | undefined): Promise<UserRecord | undefined>;
}

/** Signed-in people's sessions (src/web), under the SHA-256 of the cookie value. */
export interface SessionStore {
  create(session: SessionRecord): Promise<void>;
  /** The session unless it expired. */
  get(idHash: string): Promise<SessionRecord | undefined>;
  delete(idHash: string): Promise<void>;
  /** Ends every session of a person (deactivation); returns how many. */
  deleteAllOf(email: string): Promise<number>;
}
