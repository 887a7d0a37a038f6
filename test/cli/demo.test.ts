import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, expect, it } from 'vitest';
import { ROOT, spawnPort } from '../helpers/spawn-port.js';

const sh = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), 'port-demo-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Runs one of the demo's printed commands in bash, as a newcomer pasting it would. */
async function paste(setup: string, command: string) {
  try {
    const { stdout, stderr } = await sh('bash', ['-c', `${setup}\n${command}`], { cwd: ROOT, timeout: 30_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

it('port demo prints commands that work when pasted', async () => {
  const demo = spawnPort(['demo', '--dir', relative(ROOT, dir), '--port', '0', '--sim-port', '0']);
  try {
    await demo.waitFor(/Press Ctrl-C to stop/);
    const commands = demo
      .stdout()
      .split('\n')
      .filter((l) => l.startsWith('  ') && !l.trimStart().startsWith('#'))
      .map((l) => l.trim());
    const [setup, allowed, denied, verify, tail] = commands;
    expect(setup).toMatch(/^export PATH=/);

    const a = await paste(setup!, allowed!);
    expect(a.code).toBe(0);
    expect(JSON.parse(a.stdout)).toMatchObject({ token_type: 'Bearer', scope: 'deploy-token' });

    const d = await paste(setup!, denied!);
    expect(d.code).toBe(1);
    expect(d.stderr).toMatch(/403 access_denied.*deploy-token/);

    const v = await paste(setup!, verify!);
    expect(v.code).toBe(0);
    expect(v.stdout).toMatch(/OK/);

    const t = await paste(setup!, tail!);
    expect(t.code).toBe(0);
    expect(t.stdout).toMatch(/allow\s+assume .*deploy-token-main/);
    expect(t.stdout).toMatch(/deny\s+assume /);
  } finally {
    await demo.stop();
  }
});
