/**
 * The shim runs the compiled CLI from dist/. `npm test` compiles first; when vitest is run
 * directly, compile here if dist/sim is missing or older than src/sim.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { compiledAgentCliPath } from '../../src/sim/index.js';

const root = resolve(import.meta.dirname, '..', '..');

function newestSourceMtime(): number {
  const dir = join(root, 'src', 'sim');
  return Math.max(...readdirSync(dir).filter((f) => f.endsWith('.ts')).map((f) => statSync(join(dir, f)).mtimeMs));
}

export function ensureDist(): void {
  const cli = compiledAgentCliPath();
  if (existsSync(cli) && statSync(cli).mtimeMs >= newestSourceMtime()) return;
  try {
    execFileSync(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], {
      cwd: root,
      stdio: 'pipe',
    });
  } catch {
    // Type errors elsewhere in the project do not stop tsc from emitting dist/sim.
  }
  if (!existsSync(cli)) throw new Error(`tsc did not produce ${cli}`);
}
