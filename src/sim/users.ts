/**
 * The simulated organization's users: the people builds name as `creator`, unblocks
 * credit as `unblocked_by`, and `unblocker` must name ("Unblocker is not a valid user id
 * for this organization", https://buildkite.com/docs/apis/rest-api/jobs).
 */
import type { SimUser, SimUserInit } from './build-types.js';
import { graphqlId } from './rest-json.js';
import { uuid } from './ids.js';

export class UserRegistry {
  private readonly byId = new Map<string, SimUser>();

  create(init: SimUserInit): SimUser {
    const id = init.id ?? uuid();
    if (this.byId.has(id)) throw new Error(`user ${id} already exists`);
    const user: SimUser = { id, graphqlId: graphqlId('User', id), name: init.name, email: init.email, createdAt: new Date() };
    this.byId.set(id, user);
    return user;
  }

  get(id: string): SimUser | undefined {
    return this.byId.get(id);
  }

  /** Members in creation order. */
  all(): SimUser[] {
    return [...this.byId.values()];
  }
}
