/**
 * SCIM provisioning: applies SCIM writes to the store and makes
 * their effect on access immediate. SCIM is authoritative for a provisioned person's
 * `active` and groups (the store re-derives their UserRecord in the same transaction,
 * so the next Cedar decision reads it). Then:
 * - deactivation (`active: false` by PUT or PATCH) or DELETE of a user ends their
 *   approver sessions and revokes everything they started or hold (`revokeUser`);
 * - losing a group ends their sessions (their eligibility changed);
 * - each change to someone's access is one decision-log record (`scim_provision`,
 *   `scim_deprovision`, `scim_group_change`), principal `Port::User::"email"`.
 * Writes are compare-and-set on the resource version, retried on a concurrent change
 * (IdPs send group PATCHes in parallel) unless the client sent If-Match.
 */
import { randomUUID } from 'node:crypto';
import { entityString } from '../audit/decision-from-policy.js';
import type { DecisionLog } from '../audit/decision-log.js';
import type { DecisionRecord } from '../store/records/decisions.js';
import type { ScimAccessChange, ScimGroupQuery, ScimGroupRecord, ScimPage, ScimUserQuery, ScimUserRecord, ScimWriteResult } from '../store/repositories/scim.js';
import type { Store } from '../store/store.js';
import { notFound, ScimError } from './errors.js';
import { normalisePatch, normaliseResource, type PatchOperation } from './idp-quirks.js';
import { asScimError, coerceIn, etag, groupFromScim, toScimGroup, toScimUser, userFromScim } from './mapping.js';
import { CORE_GROUP, CORE_USER, ENTERPRISE_USER, scimmy } from './scimmy.js';

export interface ScimProvisioningDeps {
  store: Store;
  log: DecisionLog;
  /** Revokes every grant a person started or holds (RevocationService, scope `user`, actor `scim`). */
  revokeUser: (email: string, reason: string) => Promise<unknown>;
  /**
   * Lifts the user revocations SCIM made for a person SCIM re-activates (RevocationService.lift,
   * origin `scim`: it re-reads the person and keeps them revoked if a concurrent deactivation
   * won — its LiftResult then lists `scim` in `still_revoked_by`).
   */
  liftUser?: (email: string, reason: string) => Promise<unknown>;
  /** Absolute URL of the SCIM root, e.g. `https://port.acme.test/scim/v2` (for `meta.location`). */
  baseUrl: string;
  now?: () => number;
}

/** What the request was, for the decision log (never its body). */
interface Operation {
  method: 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  resourceType: 'User' | 'Group';
  id: string;
  /** The e-mail this request explicitly deprovisions (DELETE, or a write leaving the user inactive). */
  deprovisions?: string | undefined;
  /** `deprovisions` was already revoked, before the write (DELETE). */
  revokedFirst?: boolean;
}

const MAX_ATTEMPTS = 8;

export class ScimProvisioning {
  readonly baseUrl: string;
  private readonly now: () => number;

  constructor(private readonly deps: ScimProvisioningDeps) {
    this.baseUrl = deps.baseUrl.replace(/\/+$/, '');
    this.now = deps.now ?? Date.now;
  }

  // Users

  async createUser(body: unknown): Promise<ScimUserRecord> {
    const S = scimmy();
    const data = normaliseResource(body, S.Schemas.User.definition, [CORE_USER, ENTERPRISE_USER]);
    const coerced = coerceIn(() => new S.Schemas.User(data, 'in'));
    const record = userFromScim(coerced, randomUUID(), this.now());
    const result = await this.deps.store.scim.createUser(record);
    await this.applyAccess(result, { method: 'POST', resourceType: 'User', id: record.id, deprovisions: record.active ? undefined : record.email });
    return record;
  }

  async replaceUser(id: string, body: unknown, ifMatch?: string): Promise<ScimUserRecord> {
    const S = scimmy();
    const data = normaliseResource(body, S.Schemas.User.definition, [CORE_USER, ENTERPRISE_USER]);
    const coerced = coerceIn(() => new S.Schemas.User(data, 'in'));
    return this.writeUser(id, ifMatch, 'PUT', async (current) => userFromScim(coerced, id, this.now(), current));
  }

  async patchUser(id: string, body: unknown, ifMatch?: string): Promise<ScimUserRecord> {
    const S = scimmy();
    const patch = normalisePatch(body, S.Schemas.User.definition);
    return this.writeUser(id, ifMatch, 'PATCH', async (current) => {
      const patched = await applyPatch(patch, toScimUser(current, this.baseUrl));
      if (patched === undefined) return undefined;
      const coerced = coerceIn(() => new S.Schemas.User(stripServerAttributes(patched), 'in'));
      return userFromScim(coerced, id, this.now(), current);
    }, setsInactive(patch.Operations));
  }

  async deleteUser(id: string, ifMatch?: string): Promise<void> {
    const current = await this.deps.store.scim.getUser(id);
    if (!current) throw notFound('User');
    checkIfMatch(ifMatch, current.version);
    // Revoke first, delete after: when revoking fails nothing is deleted and the answer is
    // 503, so the IdP's retry runs the whole thing again (after a delete it would get 404
    // and stop). Revoking again on a retry is harmless.
    if (current.email) {
      try {
        await this.deps.revokeUser(current.email, 'SCIM deleted the user');
      } catch {
        throw new ScimError(503, 'revocation_failed', "Revoking the user's grants failed, so the user was not deleted; retry the request.");
      }
    }
    const result = await this.deps.store.scim.deleteUser(id);
    if (result === 'not_found') throw notFound('User');
    await this.applyAccess(result, { method: 'DELETE', resourceType: 'User', id, deprovisions: current.email, revokedFirst: current.email !== undefined });
  }

  getUser(id: string): Promise<ScimUserRecord | undefined> {
    return this.deps.store.scim.getUser(id);
  }

  // Groups

  async createGroup(body: unknown): Promise<ScimGroupRecord> {
    const S = scimmy();
    const data = normaliseResource(body, S.Schemas.Group.definition, [CORE_GROUP]);
    const coerced = coerceIn(() => new S.Schemas.Group(data, 'in'));
    const record = groupFromScim(coerced, randomUUID(), this.now());
    const result = await this.deps.store.scim.createGroup(record);
    await this.applyAccess(result, { method: 'POST', resourceType: 'Group', id: record.id });
    return record;
  }

  async replaceGroup(id: string, body: unknown, ifMatch?: string): Promise<ScimGroupRecord> {
    const S = scimmy();
    const data = normaliseResource(body, S.Schemas.Group.definition, [CORE_GROUP]);
    const coerced = coerceIn(() => new S.Schemas.Group(data, 'in'));
    return this.writeGroup(id, ifMatch, 'PUT', async (current) => groupFromScim(coerced, id, this.now(), current));
  }

  async patchGroup(id: string, body: unknown, ifMatch?: string): Promise<ScimGroupRecord> {
    const S = scimmy();
    const patch = normalisePatch(body, S.Schemas.Group.definition);
    return this.writeGroup(id, ifMatch, 'PATCH', async (current) => {
      const patched = await applyPatch(patch, toScimGroup(current, this.baseUrl));
      if (patched === undefined) return undefined;
      const coerced = coerceIn(() => new S.Schemas.Group(stripServerAttributes(patched), 'in'));
      return groupFromScim(coerced, id, this.now(), current);
    });
  }

  async deleteGroup(id: string, ifMatch?: string): Promise<void> {
    const current = await this.deps.store.scim.getGroup(id);
    if (!current) throw notFound('Group');
    checkIfMatch(ifMatch, current.version);
    const result = await this.deps.store.scim.deleteGroup(id);
    if (result === 'not_found') throw notFound('Group');
    await this.applyAccess(result, { method: 'DELETE', resourceType: 'Group', id });
  }

  getGroup(id: string): Promise<ScimGroupRecord | undefined> {
    return this.deps.store.scim.getGroup(id);
  }

  listUsers(query: ScimUserQuery): Promise<ScimPage<ScimUserRecord>> {
    return this.deps.store.scim.listUsers(query);
  }

  listGroups(query: ScimGroupQuery): Promise<ScimPage<ScimGroupRecord>> {
    return this.deps.store.scim.listGroups(query);
  }

  // Writes

  private async writeUser(
    id: string,
    ifMatch: string | undefined,
    method: 'PUT' | 'PATCH',
    change: (current: ScimUserRecord) => Promise<ScimUserRecord | undefined>,
    explicitDeactivation = false,
  ): Promise<ScimUserRecord> {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const current = await this.deps.store.scim.getUser(id);
      if (!current) throw notFound('User');
      checkIfMatch(ifMatch, current.version);
      const next = await change(current);
      if (next === undefined) {
        // Nothing changed. A repeated deactivation still re-runs the revocation: the IdP
        // retries when an earlier attempt failed half-way, and revocation is idempotent.
        if (explicitDeactivation && !current.active && current.email) {
          await this.applyAccess({ changes: [] }, { method, resourceType: 'User', id, deprovisions: current.email });
        }
        return current;
      }
      const result = await this.deps.store.scim.replaceUser(next, current.version);
      if (result === 'not_found') throw notFound('User');
      if (result === 'conflict') {
        if (ifMatch !== undefined) throw preconditionFailed();
        continue;
      }
      await this.applyAccess(result, { method, resourceType: 'User', id, deprovisions: next.active ? undefined : (next.email ?? current.email) });
      return next;
    }
    throw new ScimError(409, 'conflict', 'The user kept changing concurrently; retry the request.');
  }

  private async writeGroup(
    id: string,
    ifMatch: string | undefined,
    method: 'PUT' | 'PATCH',
    change: (current: ScimGroupRecord) => Promise<ScimGroupRecord | undefined>,
  ): Promise<ScimGroupRecord> {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const current = await this.deps.store.scim.getGroup(id);
      if (!current) throw notFound('Group');
      checkIfMatch(ifMatch, current.version);
      const next = await change(current);
      if (next === undefined) return current;
      const result = await this.deps.store.scim.replaceGroup(next, current.version);
      if (result === 'not_found') throw notFound('Group');
      if (result === 'conflict') {
        if (ifMatch !== undefined) throw preconditionFailed();
        continue;
      }
      await this.applyAccess(result, { method, resourceType: 'Group', id });
      return next;
    }
    throw new ScimError(409, 'conflict', 'The group kept changing concurrently; retry the request.');
  }

  /** Makes a committed change take effect: sessions, revocation, decision log. */
  private async applyAccess(result: ScimWriteResult, op: Operation): Promise<void> {
    const changes: ScimAccessChange[] = [...result.changes];
    const explicit = op.deprovisions;
    if (explicit !== undefined && !changes.some((c) => c.email === explicit)) {
      const user = await this.deps.store.users.get(explicit);
      if (user && !user.active) changes.push({ email: explicit, before: user, after: user });
    }
    const records: DecisionRecord[] = [];
    let revocationFailed = false;
    for (const { email, before, after } of changes) {
      const scim = { method: op.method, resource_type: op.resourceType, id: op.id };
      if (!after.active && (before?.active === true || explicit === email)) {
        const sessionsEnded = await this.deps.store.sessions.deleteAllOf(email);
        const reason = op.method === 'DELETE' && op.resourceType === 'User' ? 'SCIM deleted the user' : 'SCIM deactivated the user';
        let revocation = 'done';
        try {
          if (!(op.revokedFirst && email === explicit)) await this.deps.revokeUser(email, reason);
        } catch {
          revocation = 'failed';
          revocationFailed = true;
        }
        records.push(
          this.record(email, 'scim_deprovision', `${reason}: approver sessions ended${revocation === 'done' ? ' and every grant they started or hold revoked' : '; revoking their grants failed'}`, {
            scim,
            sessions_ended: sessionsEnded,
            revocation,
          }),
        );
        continue;
      }
      if (!after.active) continue;
      if (before?.active !== true) {
        // (Re-)activated: what SCIM revoked when it deprovisioned them is lifted (an admin's revocation stays).
        // A failed lift leaves them revoked (fail closed) until SCIM re-activates them again or an admin lifts it;
        // `kept`: the person read inactive by the time of the lift (a deactivation raced this write).
        let lift: string | undefined;
        if (this.deps.liftUser) lift = await this.deps.liftUser(email, 'SCIM re-activated the user').then(liftOutcome, () => 'failed');
        records.push(this.record(email, 'scim_provision', 'SCIM provisioned the user as active', { scim, groups: after.groups, ...(lift ? { revocation_lift: lift } : {}) }));
        continue;
      }
      const removed = before.groups.filter((g) => !after.groups.includes(g));
      const added = after.groups.filter((g) => !before.groups.includes(g));
      if (removed.length === 0 && added.length === 0) continue;
      // Eligibility changed: a session must not keep approving with a group it lost.
      const sessionsEnded = removed.length > 0 ? await this.deps.store.sessions.deleteAllOf(email) : 0;
      records.push(
        this.record(email, 'scim_group_change', `SCIM changed the user's groups${removed.length > 0 ? '; approver sessions ended' : ''}`, {
          scim,
          groups: after.groups,
          groups_added: added,
          groups_removed: removed,
          sessions_ended: sessionsEnded,
        }),
      );
    }
    await this.deps.log.record(records);
    if (revocationFailed) {
      throw new ScimError(503, 'revocation_failed', 'The change is saved and sessions ended, but revoking the user\'s grants failed; retry the request.');
    }
  }

  private record(email: string, action: string, reason: string, context: Record<string, unknown>): DecisionRecord {
    return {
      id: randomUUID(),
      time: new Date(this.now()).toISOString(),
      principal: entityString({ type: 'User', id: email }),
      action,
      resource: null,
      decision: 'allow',
      policies: [],
      reason,
      context,
    };
  }
}

/** `kept` when SCIM's revocation is still in force after the lift, else `done`. */
function liftOutcome(result: unknown): 'done' | 'kept' {
  const by = typeof result === 'object' && result !== null ? (result as { still_revoked_by?: unknown }).still_revoked_by : undefined;
  return Array.isArray(by) && by.includes('scim') ? 'kept' : 'done';
}

/** RFC 7644 §3.5.2 via SCIMMY's PatchOp; undefined when nothing changed. */
async function applyPatch(patch: { schemas: string[]; Operations: PatchOperation[] }, resource: object): Promise<object | undefined> {
  const S = scimmy();
  try {
    const target = await new S.Messages.PatchOp(patch as never).apply(resource as never, async (t: unknown) => t as never);
    return target ?? undefined;
  } catch (err) {
    throw asScimError(err);
  }
}

/** The patched resource without what the server owns, ready for inbound coercion. */
function stripServerAttributes(resource: object): Record<string, unknown> {
  const data = JSON.parse(JSON.stringify(resource)) as Record<string, unknown>;
  delete data.id;
  delete data.meta;
  delete data.groups;
  // Group members go back in by value; the server-built $ref is not the client's.
  if (Array.isArray(data.members)) data.members = (data.members as { value?: unknown }[]).map((m) => ({ value: m.value }));
  return data;
}

/** Whether a PATCH sets `active` to false (explicit deactivation, after IdP normalisation). */
function setsInactive(ops: PatchOperation[]): boolean {
  return ops.some(
    (o) =>
      o.op !== 'remove' &&
      ((o.path !== undefined && o.path.toLowerCase() === 'active' && o.value === false) ||
        (o.path === undefined && typeof o.value === 'object' && o.value !== null && (o.value as Record<string, unknown>).active === false)),
  );
}

/** RFC 7644 §3.14 / RFC 7232 §3.1: If-Match with a weak or strong ETag, or `*`. */
function checkIfMatch(ifMatch: string | undefined, version: number): void {
  if (ifMatch === undefined) return;
  const tags = ifMatch.split(',').map((t) => t.trim());
  const current = etag(version);
  if (tags.includes('*') || tags.some((t) => t === current || `W/${t}` === current)) return;
  throw preconditionFailed();
}

function preconditionFailed(): ScimError {
  return new ScimError(412, 'precondition_failed', 'The resource changed since the version in If-Match; fetch it again.');
}
