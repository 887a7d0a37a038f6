import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startRelayHarness, type RelayHarness } from '../helpers/relay-harness.js';
import { buildRequest, send } from './support.js';

let h: RelayHarness;
let token: string;
beforeAll(async () => {
  h = await startRelayHarness();
  token = await h.token();
});
afterAll(async () => {
  await h?.close();
});
beforeEach(() => h.upstream.reset());

describe('Expect: 100-continue is answered only after the request is admitted', () => {
  const expectHead = (target: string, tok: string | null) =>
    buildRequest(h, target, { method: 'PUT', token: tok, headers: [['Expect', '100-continue'], ['Content-Length', '5']] });

  it('a denied upload gets 403 without 100 Continue, so the client never sends its body', async () => {
    const r = await send(h, expectHead('/relay/files/elsewhere/x', token), { expectResponses: 1 });
    expect(r.interim.map((i) => i.status)).toEqual([]);
    expect(r.responses[0]!.status).toBe(403);
    const r401 = await send(h, expectHead('/relay/files/uploads/x', null), { expectResponses: 1 });
    expect(r401.interim).toEqual([]);
    expect(r401.responses[0]!.status).toBe(401);
    expect(h.upstream.requests).toHaveLength(0);
  });

  it('an allowed upload gets 100 Continue, then its body is forwarded', async () => {
    const r = await send(h, expectHead('/relay/files/uploads/x', token), {
      writeDelays: [{ delayMs: 300, data: 'hello' }],
      expectResponses: 1,
      timeoutMs: 5000,
    });
    expect(r.interim.map((i) => i.status)).toEqual([100]);
    expect(r.responses[0]!.status).toBe(200);
    expect(h.upstream.requests[0]).toMatchObject({ method: 'PUT', bodyBytes: 5 });
  });
});
