import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Harness } from '../helpers/port-harness.js';
import { type Answer, decisionsSince, deployJob, eventually, headSeq, portToken, release, startCredsHarness } from './support.js';

/**
 * A job looping POST /v1/credentials/<command secret> can't
 * make Port fork without bound — at most `command_concurrency` runs per credential, the
 * rest wait briefly and then get 503 "busy" — and `cache_for` reuses the last output.
 * The commands count their runs in files; the blocking one waits for a file the test writes.
 */
let h: Harness;
let dir: string;

const lines = (file: string) => (existsSync(join(dir, file)) ? readFileSync(join(dir, file), 'utf8').split('\n').filter(Boolean).length : 0);
/** A command that logs a run, prints `<prefix>-<runs so far>`, and fails while `<prefix>.fail` exists. */
const counting = (prefix: string) =>
  `command:echo run >> ${dir}/${prefix}.log; [ -e ${dir}/${prefix}.fail ] && exit 5; printf '${prefix}-%s' "$(wc -l < ${dir}/${prefix}.log | tr -d ' ')"`;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'port-command-limits-'));
  h = await startCredsHarness({
    credentials: {
      blocking: {
        type: 'secret',
        value: `command:echo run >> ${dir}/blocking.log; while [ ! -e ${dir}/go ]; do sleep 0.05; done; printf blocking-value`,
        command_timeout: '1m',
        command_concurrency: 4,
      },
      uncached: { type: 'secret', value: counting('uncached') },
      cached: { type: 'secret', value: counting('cached'), cache_for: '1h' },
      brief: { type: 'secret', value: counting('brief'), cache_for: '1s' },
    },
  });
});
afterAll(async () => {
  writeFileSync(join(dir, 'go'), '');
  await h?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('command_concurrency', () => {
  it('runs at most 4 at once per credential; the next waits, then gets 503 busy without a fork', async () => {
    const bearer = await portToken(h, deployJob(h), 'blocking uncached');
    const running = Array.from({ length: 4 }, () => release(h, 'blocking', bearer));
    await eventually(async () => (lines('blocking.log') === 4 ? true : undefined));

    const before = await headSeq(h);
    const busy = await release(h, 'blocking', bearer);
    expect(busy.status).toBe(503);
    expect(busy.body).toEqual({
      error: 'credential_unavailable',
      error_description: 'The secret "blocking" is not available: its command is already running 4 times (credentials.blocking.command_concurrency); busy, retry in a few seconds.',
    });
    expect(lines('blocking.log')).toBe(4);
    const [denied] = await decisionsSince(h, before);
    expect(denied).toMatchObject({ action: 'assume', decision: 'deny', resource: 'Port::Credential::"blocking"', context: { failure: 'credential_unavailable' } });

    // The cap is per credential: another command secret still runs.
    expect((await release(h, 'uncached', bearer)).status).toBe(200);

    // A release that waits in line is served once a slot frees.
    const queued = release(h, 'blocking', bearer);
    writeFileSync(join(dir, 'go'), '');
    const answers: Answer[] = await Promise.all([...running, queued]);
    for (const a of answers) expect(a).toMatchObject({ status: 200, body: { value: 'blocking-value' } });
    expect(lines('blocking.log')).toBe(5);
  });
});

describe('cache_for', () => {
  it('without it (default) the command runs on every release', async () => {
    const bearer = await portToken(h, deployJob(h), 'uncached');
    const a = (await release(h, 'uncached', bearer)).body.value as string;
    const b = (await release(h, 'uncached', bearer)).body.value as string;
    expect(Number(b.split('-')[1])).toBe(Number(a.split('-')[1]) + 1);
  });

  it('serves the last output for cache_for, to every job, from one run even when asked at once', async () => {
    const answers = await Promise.all(Array.from({ length: 6 }, async () => release(h, 'cached', await portToken(h, deployJob(h), 'cached'))));
    for (const a of answers) expect(a).toMatchObject({ status: 200, body: { value: 'cached-1' } });
    expect(lines('cached.log')).toBe(1);
    const again = await release(h, 'cached', await portToken(h, deployJob(h), 'cached'));
    expect(again.body.value).toBe('cached-1');
    expect(lines('cached.log')).toBe(1);
  });

  it('runs the command again once the output is older than cache_for, and never caches a failure', async () => {
    const bearer = await portToken(h, deployJob(h), 'brief');
    writeFileSync(join(dir, 'brief.fail'), '');
    expect((await release(h, 'brief', bearer)).status).toBe(503);
    rmSync(join(dir, 'brief.fail'));
    expect((await release(h, 'brief', bearer)).body.value).toBe('brief-2');
    expect((await release(h, 'brief', bearer)).body.value).toBe('brief-2');
    // Past the 1 s cache: a fresh run.
    const next = await eventually(async () => {
      await new Promise((r) => setTimeout(r, 250));
      const v = (await release(h, 'brief', bearer)).body.value as string;
      return v === 'brief-2' ? undefined : v;
    });
    expect(next).toBe('brief-3');
  });
});
