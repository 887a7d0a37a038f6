import { describe, expect, it } from 'vitest';
import { BuildCreatorLookup, type BuildCreatorApi } from '../../src/broker/build-creator.js';
import type { JobIdentity } from '../../src/identity/job-identity.js';
import type { Store } from '../../src/store/store.js';

const job = (buildNumber: number) => ({ pipelineSlug: 'deploy', buildNumber }) as JobIdentity;
const store = { users: { get: async () => undefined } } as unknown as Store;

/** A Buildkite API that answers from a table, or fails while `down` is set. */
function api() {
  const state = { down: false, calls: 0 };
  const impl: BuildCreatorApi = {
    async getBuild(_pipeline, number) {
      state.calls++;
      if (state.down) throw new Error('503 from Buildkite');
      return { creator: number === 1 ? { email: 'Pat@Acme.test' } : null };
    },
  };
  return { state, impl };
}

describe('BuildCreatorLookup', () => {
  it('reuses an answer within its ttl, asks again after it', async () => {
    let now = 0;
    const { state, impl } = api();
    const lookup = new BuildCreatorLookup(impl, store, { ttlMs: 1000, now: () => now });
    expect(await lookup.creatorOf(job(1))).toEqual({ status: 'known', email: 'pat@acme.test' });
    await lookup.creatorOf(job(1));
    expect(state.calls).toBe(1);
    now = 2000;
    await lookup.creatorOf(job(1));
    expect(state.calls).toBe(2);
  });

  it('keeps using a build it has seen while the API is down; an unseen build is unknown', async () => {
    let now = 0;
    const { state, impl } = api();
    const lookup = new BuildCreatorLookup(impl, store, { ttlMs: 1000, now: () => now });
    await lookup.creatorOf(job(1));
    await lookup.creatorOf(job(2));
    state.down = true;
    now = 5000;
    expect(await lookup.creatorOf(job(1))).toEqual({ status: 'known', email: 'pat@acme.test' });
    expect(await lookup.creatorOf(job(2))).toEqual({ status: 'none' });
    expect(await lookup.creatorOf(job(3))).toEqual({ status: 'unavailable', reason: 'lookup_failed' });
  });

  it('without an API it never knows', async () => {
    expect(await new BuildCreatorLookup(undefined, store).creatorOf(job(1))).toEqual({ status: 'unavailable', reason: 'not_configured' });
  });
});
