import type { ScimStore, ScimWriteResult } from '../store/repositories/scim.js';
import type { UserStore } from '../store/repositories/users.js';
import type { Store } from '../store/store.js';

/** Told, after a write is durable, whose UserRecord (lower-cased e-mails) it may have changed. */
export type UserWriteListener = (emails: string[]) => void;

/**
 * The store, telling `listener` about every write through this process that can change
 * a person's UserRecord (`active`, groups): SSO sign-in and SCIM both go through the
 * `users` and `scim` repositories. Caches of user records (the relay's CreatorDirectory)
 * drop what they hold of those people, so the change applies to the next decision.
 * Every other repository is the store's own, untouched.
 */
export function observeUserWrites(store: Store, listener: UserWriteListener): Store {
  const changed = <T extends ScimWriteResult | 'conflict' | 'not_found'>(result: T): T => {
    if (typeof result === 'object') listener(result.changes.map((c) => c.email.toLowerCase()));
    return result;
  };
  const users: UserStore = {
    get: (email) => store.users.get(email),
    upsert: async (user) => {
      await store.users.upsert(user);
      listener([user.email.toLowerCase()]);
    },
    update: async (email, change) => {
      const after = await store.users.update(email, change);
      listener([email.toLowerCase()]);
      return after;
    },
  };
  const scim: ScimStore = {
    createUser: async (user) => changed(await store.scim.createUser(user)),
    replaceUser: async (user, expectedVersion) => changed(await store.scim.replaceUser(user, expectedVersion)),
    deleteUser: async (id) => changed(await store.scim.deleteUser(id)),
    getUser: (id) => store.scim.getUser(id),
    listUsers: (query) => store.scim.listUsers(query),
    createGroup: async (group) => changed(await store.scim.createGroup(group)),
    replaceGroup: async (group, expectedVersion) => changed(await store.scim.replaceGroup(group, expectedVersion)),
    deleteGroup: async (id) => changed(await store.scim.deleteGroup(id)),
    getGroup: (id) => store.scim.getGroup(id),
    listGroups: (query) => store.scim.listGroups(query),
  };
  return new Proxy(store, {
    get(target, property) {
      if (property === 'users') return users;
      if (property === 'scim') return scim;
      const value: unknown = Reflect.get(target, property, target);
      // The store's own methods run on the store itself (private fields, `this`).
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
}
