/**
 * The docs' command blocks work as written. Every fenced shell block (```sh, ```bash,
 * ```shell, ```console) in README.md and docs/**\/*.md either runs here, or says why it
 * can't in an HTML comment on the line before it (`<!-- not run: needs a real Buildkite
 * organization -->`). Runnable blocks run in order, per document, in one fresh folder,
 * the way a reader follows a page: a block sees the directory and the exported variables
 * the blocks before it left. The folder holds the repository's `examples/` (a link), as
 * a clone's root would, so blocks may use them, but nothing a block writes lands in the
 * repository. `port` is this repository's bin (a wrapper on PATH), since the docs write
 * the installed command.
 */
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { PORT_SCHEMA } from '../../src/policy/schema.js';
import { REPO, SHELL_LANGS, commandsOf, docFiles, fencedBlocks, type FencedBlock } from './markdown.js';

const work = mkdtempSync(join(tmpdir(), 'port-docs-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** A `port` command on PATH that runs this checkout's bin, as `npm install -g` would provide. */
function portOnPath(): string {
  const bin = join(work, 'bin');
  mkdirSync(bin, { recursive: true });
  const wrapper = join(bin, 'port');
  writeFileSync(wrapper, `#!/bin/sh\nexec "${process.execPath}" "${join(REPO, 'bin', 'port.js')}" "$@"\n`);
  chmodSync(wrapper, 0o755);
  return bin;
}

/** The environment a reader's shell has: no PORT_* settings of whoever runs the tests. */
function readerEnv(bin: string, home: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('PORT_') && !k.startsWith('BUILDKITE')) env[k] = v;
  return { ...env, PATH: `${bin}:${process.env.PATH ?? ''}`, HOME: home, NO_COLOR: '1' };
}

/** Runs one shell script; resolves with its exit status and output (never rejects). */
function runShell(script: string, env: NodeJS.ProcessEnv, timeoutMs: number): Promise<{ status: number | string; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn('bash', ['-c', script], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ status: code ?? `killed by ${signal} after ${timeoutMs / 1000} s`, stdout, stderr });
    });
  });
}

const bin = portOnPath();
const shellBlocks = docFiles().flatMap((f) => fencedBlocks(f).filter((b) => SHELL_LANGS.has(b.lang)));

describe('command blocks in README.md and docs/', () => {
  it('finds the docs and their blocks', () => {
    expect(docFiles()).toContain('docs/getting-started.md');
    expect(shellBlocks.filter((b) => b.notRun === undefined).length).toBeGreaterThan(5);
  });

  it('never suggest npx for the port command', () => {
    const offending = docFiles().filter((f) => /npx\s+port\b/.test(readFileSync(join(REPO, f), 'utf8')));
    expect(offending).toEqual([]);
  });

  const byFile = new Map<string, FencedBlock[]>();
  for (const b of shellBlocks) byFile.set(b.file, [...(byFile.get(b.file) ?? []), b]);

  for (const [file, blocks] of byFile) {
    const runnable = blocks.filter((b) => b.notRun === undefined);
    if (runnable.length === 0) continue;
    it.concurrent(`${file}: every block not marked "not run" runs successfully`, async () => {
      const dir = join(work, file.replace(/[/.]/g, '_'));
      const state = join(dir, '.state');
      const home = join(dir, 'home');
      mkdirSync(state, { recursive: true });
      mkdirSync(home, { recursive: true });
      symlinkSync(join(REPO, 'examples'), join(dir, 'examples'));
      writeFileSync(join(state, 'cwd'), dir);
      writeFileSync(join(state, 'env'), '');
      const failures: string[] = [];
      for (const block of runnable) {
        // One shell per block, carrying the directory and exports on to the next, as one
        // terminal would; -e and pipefail so a failing command fails its block.
        const script = [
          'set -eo pipefail',
          `cd "$(cat '${state}/cwd')"`,
          `. '${state}/env'`,
          commandsOf(block),
          `pwd > '${state}/cwd'`,
          `export -p | grep -v -E '^declare -x (PWD|OLDPWD|SHLVL|_)=' > '${state}/env'`,
        ].join('\n');
        // Generous: on a loaded machine one `port` start can take many seconds of wall time.
        const run = await runShell(script, readerEnv(bin, home), 180_000);
        if (run.status !== 0) {
          failures.push(
            `${file}:${block.line} (exit ${run.status}):\n${block.body}\n--- stdout\n${run.stdout.slice(-2000)}\n--- stderr\n${run.stderr.slice(-2000)}`,
          );
          break; // later blocks of the page build on this one
        }
      }
      expect(failures, failures.join('\n\n')).toEqual([]);
    }, 600_000);
  }

  it('every "not run" block says why', () => {
    for (const b of shellBlocks.filter((x) => x.notRun !== undefined)) expect(b.notRun!.length, `${b.file}:${b.line}`).toBeGreaterThan(10);
  });
});

describe('docs/reference/policies.md', () => {
  it("shows Port's Cedar schema exactly as Port validates against it", () => {
    const block = fencedBlocks('docs/reference/policies.md').find((b) => b.lang === 'cedarschema');
    expect(block, 'a ```cedarschema block').toBeDefined();
    expect(block!.body.trim()).toBe(PORT_SCHEMA.trim());
  });
});
