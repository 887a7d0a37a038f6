/**
 * `port demo`'s options. The walkthrough itself — every printed step pasted and run, the
 * approval in a browser, a clean second run — is test/demo/demo-walkthrough.e2e.test.ts.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { runPort } from '../helpers/spawn-port.js';

const dir = mkdtempSync(join(tmpdir(), 'port-demo-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

it('--help names every part the demo starts and how to continue a previous run', async () => {
  const r = await runPort(['demo', '--help']);
  expect(r.code).toBe(0);
  for (const flag of ['--dir', '--port', '--sim-port', '--idp-port', '--service-port', '--keep']) expect(r.stdout).toContain(flag);
});

it.each([
  ['--port', 'http'],
  ['--sim-port', '70000'],
  ['--idp-port', '-1'],
  ['--service-port', '80a'],
])('%s %s: exit 2 with one line naming the flag and what it takes', async (flag, value) => {
  const r = await runPort(['demo', '--dir', join(dir, 'bad'), flag, value]);
  expect(r.code).toBe(2);
  expect(r.stderr.trim()).toBe(`port demo: ${flag} must be a TCP port number from 0 (any free port) to 65535; got "${value}"`);
  expect(r.stdout).toBe('');
});
