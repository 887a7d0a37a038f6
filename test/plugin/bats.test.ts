/**
 * The plugin's own tests (plugin/tests/*.bats: stubbed buildkite-agent, curl and jq, as
 * Buildkite's plugin tester runs them), run with the system's `bats` in TAP mode. Any
 * failing or missing test fails this one, with the TAP output in the message. Without
 * `bats` the file fails in CI and is skipped elsewhere, saying how to install it.
 */
import { spawn, spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '..', '..');
const TESTS = resolve(ROOT, 'plugin', 'tests');
const haveBats = spawnSync('bats', ['--version'], { stdio: 'ignore' }).status === 0;
const INSTALL = 'bats is not installed; install it with `sudo apt-get install -y bats` to run the plugin tests (plugin/tests/*.bats)';

function runBats(args: string[]): Promise<{ code: number; output: string }> {
  return new Promise((resolveRun, reject) => {
    // Only what the tests need from this process's environment: they set the job's own.
    const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp', LANG: 'C.UTF-8' };
    const child = spawn('bats', args, { cwd: resolve(ROOT, 'plugin'), env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (output += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (output += d));
    child.on('error', reject);
    child.on('close', (code) => resolveRun({ code: code ?? 1, output }));
  });
}

if (!haveBats && !process.env.CI) console.warn(`plugin/tests skipped: ${INSTALL}`);

describe('plugin/tests (bats)', () => {
  if (!haveBats && process.env.CI) {
    it('needs bats in CI', () => {
      expect.fail(INSTALL);
    });
    return;
  }

  it.skipIf(!haveBats)(haveBats ? 'all pass under bats --tap' : `skipped: ${INSTALL}`, { timeout: 300_000 }, async () => {
    const planned = await runBats(['--count', TESTS]);
    expect(planned.code, planned.output).toBe(0);
    const count = Number(planned.output.trim());
    expect(count).toBeGreaterThan(30);

    const { code, output } = await runBats(['--tap', TESTS]);
    const failed = output.split('\n').filter((l) => l.startsWith('not ok'));
    // The whole TAP stream is the message: each failure with bats' reason and the hook's output.
    expect({ code, failed }, output).toEqual({ code: 0, failed: [] });
    expect(output).toContain(`1..${count}`);
    expect(output.split('\n').filter((l) => /^ok \d+ /.test(l))).toHaveLength(count);
  });
});
