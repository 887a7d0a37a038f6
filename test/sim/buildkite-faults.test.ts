import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BuildkiteSimulator, type SimBuild } from '../../src/sim/index.js';

let sim: BuildkiteSimulator;
let build: SimBuild;

beforeAll(async () => {
  sim = await BuildkiteSimulator.start({ organization: 'acme', apiToken: 'bkua_faults_token' });
  const dev = sim.createUser({ name: 'Dev', email: 'dev@example.com' });
  build = sim.createBuild({ pipelineSlug: 'web', branch: 'main', creator: dev, steps: [{ type: 'command', key: 'b' }, { type: 'block', key: 'gate', label: 'Gate' }] });
});
afterAll(async () => {
  await sim.close();
});

const buildPath = () => `/v2/organizations/acme/pipelines/web/builds/${build.number}`;

async function api(path: string, init: { method?: string; body?: unknown; token?: string | null; signal?: AbortSignal } = {}) {
  const headers: Record<string, string> = {};
  const token = init.token === undefined ? sim.apiToken : init.token;
  if (token !== null) headers.authorization = `Bearer ${token}`;
  if (init.body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${sim.apiUrl}${path}`, {
    method: init.method ?? 'GET',
    headers,
    ...(init.body !== undefined ? { body: JSON.stringify(init.body) } : {}),
    ...(init.signal ? { signal: init.signal } : {}),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

/** Polls until `check` holds; the bound only catches a hang. */
async function eventually(check: () => boolean | Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('REST API outages (fault injection)', () => {
  it('unavailable: every call answers 503 until the outage is cleared, and the calls are recorded', async () => {
    expect((await api(buildPath())).status).toBe(200);
    expect(sim.setApiOutage({ mode: 'unavailable' })).toEqual({ mode: 'unavailable', status: 503, until: null });
    for (const path of [buildPath(), `/v2/organizations/acme/jobs/${build.jobs[1]!.id}`]) {
      const res = await api(path);
      expect(res).toEqual({ status: 503, body: { message: 'Service Unavailable' } });
    }
    // Whoever asks: even a call with a wrong token meets the outage first.
    expect((await api(buildPath(), { token: 'bkua_wrong' })).status).toBe(503);
    expect(sim.apiRequests.slice(-3).map((r) => r.status)).toEqual([503, 503, 503]);
    expect(sim.setApiOutage(null)).toEqual({ mode: 'none', status: null, until: null });
    expect((await api(buildPath())).status).toBe(200);
  });

  it('answers another 5xx when asked, refuses a non-5xx status, and ends by itself after `seconds`', async () => {
    sim.setApiOutage({ mode: 'unavailable', status: 502, seconds: 0.2 });
    expect((await api(buildPath())).status).toBe(502);
    expect(sim.setApiOutage.bind(sim, { mode: 'unavailable', status: 404 })).toThrow(/5xx/);
    await eventually(async () => (await api(buildPath())).status === 200, 'the outage to end');
  });

  it('hang: calls are held unanswered until the outage ends, then answered normally', async () => {
    sim.setApiOutage({ mode: 'hang' });
    let answered = false;
    const held = api(buildPath()).then((r) => {
      answered = true;
      return r;
    });
    // Not answered while the outage lasts (a hang can only be seen as "not yet").
    await new Promise((r) => setTimeout(r, 100));
    expect(answered).toBe(false);
    sim.setApiOutage(null);
    expect((await held).status).toBe(200);
  });

  it('hang: a caller that gives up is let go, and the simulator keeps serving', async () => {
    sim.setApiOutage({ mode: 'hang' });
    const controller = new AbortController();
    const held = api(buildPath(), { signal: controller.signal });
    await new Promise((r) => setTimeout(r, 50));
    controller.abort();
    await expect(held).rejects.toThrow();
    sim.setApiOutage(null);
    expect((await api(buildPath())).status).toBe(200);
  });

  it('close() lets held calls go', async () => {
    const other = await BuildkiteSimulator.start({ organization: 'acme' });
    other.setApiOutage({ mode: 'hang' });
    const held = fetch(`${other.apiUrl}/v2/user`, { headers: { authorization: `Bearer ${other.apiToken}` } }).then(
      (r) => r.status,
      () => 0,
    );
    await new Promise((r) => setTimeout(r, 50));
    await other.close();
    expect([200, 0]).toContain(await held);
  });
});

describe('the admin switch PUT /_sim/faults/rest', () => {
  it('starts and ends an outage, guarded by the API token', async () => {
    expect((await api('/_sim/faults/rest', { method: 'PUT', body: { mode: 'unavailable' }, token: null })).status).toBe(401);
    expect((await api('/_sim/faults/rest', { method: 'PUT', body: { mode: 'unavailable' }, token: 'bkua_wrong' })).status).toBe(401);
    const on = await api('/_sim/faults/rest', { method: 'PUT', body: { mode: 'unavailable', seconds: 60 } });
    expect(on.status).toBe(200);
    expect(on.body).toMatchObject({ mode: 'unavailable', status: 503 });
    expect(typeof on.body.until).toBe('string');
    expect((await api(buildPath())).status).toBe(503);
    expect(await api('/_sim/faults/rest', { method: 'PUT', body: { mode: 'none' } })).toEqual({ status: 200, body: { mode: 'none', status: null, until: null } });
    expect((await api(buildPath())).status).toBe(200);
  });

  it('refuses a bad request with one clear message', async () => {
    expect(await api('/_sim/faults/rest', { method: 'PUT', body: { mode: 'sometimes' } })).toEqual({
      status: 422,
      body: { message: 'mode must be "unavailable", "hang" or "none"' },
    });
    expect((await api('/_sim/faults/rest', { method: 'PUT', body: { mode: 'hang', seconds: -1 } })).status).toBe(422);
    expect((await api('/_sim/faults/rest', { method: 'PUT', body: ['hang'] })).status).toBe(400);
    expect(sim.setApiOutage(null).mode).toBe('none');
  });
});
