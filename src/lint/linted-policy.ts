/**
 * A policy as the lint rules see it: its references (src/policy/entity-references.ts) and
 * where a finding about it points. A hand-written policy points at its file, line and
 * column; a policy compiled from `grants:` points at the grant it came from, since its
 * generated text is nowhere on disk.
 */
import path from 'node:path';
import type { EntityReference, PolicyReferences } from '../policy/entity-references.js';

export interface LintedPolicy {
  refs: PolicyReferences;
  /** Set for a policy compiled from `grants:`; `source` is its binding (`port.yaml grants.bindings[0]`). */
  compiled?: { role: string; source: string };
}

/** Where a finding about `policy` (or one of its references) points. */
export function policyLocation(policy: LintedPolicy, cwd: string, ref?: EntityReference): string {
  if (policy.compiled !== undefined) {
    return `${policy.compiled.source} (${policy.refs.id ?? `role ${policy.compiled.role}`})`;
  }
  const at = ref ?? policy.refs;
  return `${displayPath(policy.refs.file, cwd)}:${at.line}:${at.column}`;
}

/** Relative to `cwd` when inside it (what a CI log links), else absolute. */
export function displayPath(file: string, cwd: string): string {
  const rel = path.relative(cwd, file);
  return rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel) ? rel : file;
}

/** `policy deploy-main: ` for messages, empty for a policy without an `@id`. */
export function policyLabel(policy: LintedPolicy): string {
  return policy.refs.id !== undefined && policy.compiled === undefined ? `policy ${policy.refs.id}: ` : '';
}
