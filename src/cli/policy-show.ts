/**
 * `port policy show [--compiled]`: the policy set as Port loads it, by source — each
 * `*.cedar` file of the folder, then each role of `grants:` (`grants:<role>`) — one line a
 * policy: its effect, id, line, actions and reason. `--compiled` prints instead the Cedar
 * text the grants compile to, with a header comment per role and per binding, exactly as
 * the loader reads it (so `grants:<role>:LINE` in explain and validation points into it).
 */
import path from 'node:path';
import { formatProblem } from '../policy/errors.js';
import { loadPolicyDir, loadPolicyFiles, type PolicyFile } from '../policy/loader.js';
import type { PolicyInfo } from '../policy/types.js';
import { EXIT_FAILED, EXIT_OK } from './exit-codes.js';

export interface ShowIO {
  out(text: string): void;
  err(text: string): void;
}

/** Prints the set of `dir` plus `compiled`; exit 1 when it does not load. */
export async function showPolicySet(dir: string, compiled: readonly PolicyFile[], io: ShowIO): Promise<number> {
  const outcome = await loadPolicyDir(dir, compiled);
  for (const w of outcome.ok ? outcome.set.warnings : outcome.warnings) io.err(`warning: ${formatProblem(w)}`);
  if (!outcome.ok) {
    for (const p of outcome.problems) io.err(formatProblem(p));
    return EXIT_FAILED;
  }
  const bySource = new Map<string, PolicyInfo[]>();
  for (const p of outcome.set.policies) bySource.set(p.file, [...(bySource.get(p.file) ?? []), p]);
  for (const [source, policies] of bySource) {
    io.out(`${shown(source)} (${policies.length} ${policies.length === 1 ? 'policy' : 'policies'})`);
    for (const p of policies) {
      const actions = p.actions === undefined ? 'any action' : p.actions.join(', ');
      io.out(`  ${p.effect} ${p.id} (line ${p.line}; ${actions})${p.reason !== undefined ? `: ${p.reason}` : ''}`);
    }
  }
  const files = outcome.set.files.length;
  io.out(
    `${outcome.set.policies.length} ${outcome.set.policies.length === 1 ? 'policy' : 'policies'} from ${files} file${files === 1 ? '' : 's'} and ${compiled.length} grant role${compiled.length === 1 ? '' : 's'}; revision ${outcome.set.revision}`,
  );
  return EXIT_OK;
}

/** Prints the compiled grants' Cedar; exit 1 when it does not validate (a bug: compiled grants always should). */
export function showCompiledGrants(configFile: string, compiled: readonly PolicyFile[], io: ShowIO): number {
  if (compiled.length === 0) {
    io.out(`// ${configFile} grants nothing: its grants: section has no bindings.`);
    return EXIT_OK;
  }
  const outcome = loadPolicyFiles(path.dirname(configFile), [], compiled);
  if (!outcome.ok) {
    for (const p of outcome.problems) io.err(formatProblem(p));
    return EXIT_FAILED;
  }
  io.out(compiled.map((f) => f.text.trimEnd()).join('\n\n'));
  return EXIT_OK;
}

/** A folder file relative to the working directory when inside it; a grants source as it is. */
function shown(source: string): string {
  if (!path.isAbsolute(source)) return source;
  const rel = path.relative(process.cwd(), source);
  return rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel) ? rel : source;
}
