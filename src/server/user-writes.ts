import type { UserRecord } from '../approvals/records.js';
import type { ScimWriteResult } from '../store/scim-store.js';
import type { Store } from '../store/store.js';

/** Told, after a write is durable, whose UserRecord (lower-cased e-mails) it may have changed. */
export type UserWriteListener = (emails: string[]) => void;

/**
 * The store, telling `listener` about every write that can change a person's
 * UserRecord (`active`, groups): SSO sign-in and SCIM both go through these methods
 * (src/store/scim-store.ts, src/store/store.ts). Caches of user records (the relay's
 * CreatorDirectory) drop what they hold of those people, so the change applies to the
 * next decision. Every other method is the store's own, untouched.
 */
export function observeUserWrites(store: Store, listener: UserWriteListener): Store {
  const changed = (result: ScimWriteResult | 'conflict' | 'not_found'): void => {
    if (typeof result === 'object') listener(result.changes.map((c) => c.email.toLowerCase()));
  };
  const wrapped: Partial<Store> = {
    upsertUser: async (user: UserRecord) => {
      await store.upsertUser(user);
      listener([user.email.toLowerCase()]);
    },
    updateUser: async (email, change) => {
      const after = await store.updateUser(email, change);
      listener([email.toLowerCase()]);
      return after;
    },
    createScimUser: async (user) => {
      const result = await store.createScimUser(user);
      changed(result);
      return result;
    },
    replaceScimUser: async (user, expectedVersion) => {
      const result = await store.replaceScimUser(user, expectedVersion);
      changed(result);
      return result;
    },
    deleteScimUser: async (id) => {
      const result = await store.deleteScimUser(id);
      changed(result);
      return result;
    },
    createScimGroup: async (group) => {
      const result = await store.createScimGroup(group);
      changed(result);
      return result;
    },
    replaceScimGroup: async (group, expectedVersion) => {
      const result = await store.replaceScimGroup(group, expectedVersion);
      changed(result);
      return result;
    },
    deleteScimGroup: async (id) => {
      const result = await store.deleteScimGroup(id);
      changed(result);
      return result;
    },
  };
  return new Proxy(store, {
    get(target, property) {
      if (Object.hasOwn(wrapped, property)) return wrapped[property as keyof Store];
      const value: unknown = Reflect.get(target, property, target);
      // The store's own methods run on the store itself (private fields, `this`).
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
}
