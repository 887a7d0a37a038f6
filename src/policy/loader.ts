/**
 * Loads the policy folder: every `*.cedar` file directly inside it (sorted by name; not
 * recursive; dot-files skipped so editor lock files don't count). Each policy must carry
 * a unique `@id("…")` — it becomes the policy's id in decisions, because cedar-wasm
 * otherwise numbers policies `policy0…` when given one policy text — and may carry
 * `@reason("…")`. The set is validated against Port's schema in strict mode, so an
 * unguarded optional attribute or a type error is refused here instead of erroring at
 * request time, where Cedar would silently skip the policy
 * (https://docs.cedarpolicy.com/auth/authorization.html; https://docs.cedarpolicy.com/policies/validation.html).
 *
 * Every problem is located in the original file: each file is parsed and validated as
 * its own string, so Cedar's offsets are offsets into that file.
 */
import { createHash } from 'node:crypto';
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { policySetTextToParts, policyToJson, validate, type DetailedError, type PolicyJson } from './cedar.js';
import { isPortAction, PORT_SCHEMA } from './schema.js';
import { locatePolicies, SourceText } from './source-text.js';
import type { PolicyInfo, PolicyProblem, PortAction, ResourceScope, ScopeEntity } from './types.js';

export interface LoadedPolicySet {
  dir: string;
  /** Paths of the `.cedar` files read, sorted. */
  files: string[];
  /** sha256 (hex) over the sorted file names and contents. */
  revision: string;
  policies: PolicyInfo[];
  warnings: PolicyProblem[];
}

export type LoadOutcome =
  | { ok: true; set: LoadedPolicySet }
  | { ok: false; problems: PolicyProblem[]; warnings: PolicyProblem[] };

/** A policy file's name in the folder, its path, and its text. */
export interface PolicyFile {
  name: string;
  path: string;
  text: string;
}

/** Ids end up in reasons, logs and metrics labels: keep them printable and short. */
const ID_PATTERN = /^[^\s\p{Cc}"]{1,128}$/u;

/**
 * `compiled`: policies compiled from the config (grants:, src/grants), each source named
 * like `grants:<role>`; loaded and validated with the folder's, they count in the revision
 * but not among `files`.
 */
export async function loadPolicyDir(dir: string, compiled: readonly PolicyFile[] = []): Promise<LoadOutcome> {
  let files: PolicyFile[];
  try {
    files = await readPolicyFiles(dir);
  } catch (err) {
    const reason = err instanceof Error && 'code' in err ? String(err.code) : 'unreadable';
    return { ok: false, problems: [wholeFile(dir, `cannot read the policy folder (${reason})`)], warnings: [] };
  }
  return loadPolicyFiles(dir, files, compiled);
}

/** Parses and validates already-read files; pure apart from cedar-wasm. */
export function loadPolicyFiles(dir: string, files: PolicyFile[], compiled: readonly PolicyFile[] = []): LoadOutcome {
  const problems: PolicyProblem[] = [];
  const warnings: PolicyProblem[] = [];
  const policies: PolicyInfo[] = [];
  const seen = new Map<string, ParsedPolicy>();

  for (const file of [...files, ...compiled]) {
    const parsed = parseFile(file);
    problems.push(...parsed.problems);
    for (const policy of parsed.policies) {
      const first = seen.get(policy.id);
      if (first !== undefined) {
        problems.push({
          file: policy.file,
          line: policy.line,
          column: policy.column,
          policyId: policy.id,
          message: `duplicate @id("${policy.id}"), first used at ${first.file}:${first.line}`,
        });
        continue;
      }
      seen.set(policy.id, policy);
      const { column: _column, ...info } = policy;
      policies.push(info);
    }
    if (parsed.parsed) {
      const checked = validateFile(file, parsed.located);
      problems.push(...checked.problems);
      warnings.push(...checked.warnings);
    }
  }
  if (problems.length === 0 && policies.length === 0) {
    warnings.push(wholeFile(dir, 'no policies found: every request will be denied'));
  }
  if (problems.length > 0) return { ok: false, problems: sortProblems(problems), warnings: sortProblems(warnings) };
  return {
    ok: true,
    set: { dir, files: files.map((f) => f.path), revision: revisionOf([...files, ...compiled]), policies, warnings: sortProblems(warnings) },
  };
}

async function readPolicyFiles(dir: string): Promise<PolicyFile[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  const names = entries
    .filter((e) => e.name.endsWith('.cedar') && !e.name.startsWith('.'))
    .map((e) => e.name)
    .sort();
  const files: PolicyFile[] = [];
  for (const name of names) {
    const filePath = path.join(dir, name);
    // stat, not the dirent: Kubernetes ConfigMap volumes mount files as symlinks.
    if (!(await stat(filePath)).isFile()) continue;
    files.push({ name, path: filePath, text: await readFile(filePath, 'utf8') });
  }
  return files;
}

export function revisionOf(files: readonly { name: string; text: string }[]): string {
  const hash = createHash('sha256');
  for (const f of [...files].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    hash.update(`${f.name}\0${Buffer.byteLength(f.text)}\0`);
    hash.update(f.text);
  }
  return hash.digest('hex');
}

/** A policy plus the column it starts at (for duplicate-id problems). */
type ParsedPolicy = PolicyInfo & { column: number };

interface ParsedFile {
  policies: ParsedPolicy[];
  /** False when Cedar could not parse the file: there is nothing to validate then. */
  parsed: boolean;
  /** UTF-16 [start, end) of each policy in the file, in file order (same order as `policies` before id checks). */
  located: { start: number; end: number; id: string | undefined }[];
  problems: PolicyProblem[];
}

function parseFile(file: PolicyFile): ParsedFile {
  const source = new SourceText(file.text);
  const split = policySetTextToParts(file.text);
  if (split.type === 'failure') {
    return { policies: [], parsed: false, located: [], problems: split.errors.map((e) => cedarProblem(file.path, source, e)) };
  }
  const problems: PolicyProblem[] = [];
  for (const template of split.policy_templates) {
    const start = file.text.indexOf(template);
    problems.push({
      file: file.path,
      ...source.positionOfIndex(Math.max(0, start)),
      message: 'templates (policies with ?principal or ?resource slots) are not supported; write a static policy',
    });
  }
  const starts = locatePolicies(file.text, split.policies);
  if (starts === undefined) {
    // Not expected: Cedar returns verbatim slices. Refuse rather than guess locations.
    problems.push(wholeFile(file.path, 'internal error: could not locate the parsed policies in the file'));
    return { policies: [], parsed: false, located: [], problems };
  }
  const order = split.policies
    .map((text, i) => ({ text, start: starts[i] ?? 0 }))
    .sort((a, b) => a.start - b.start);

  const policies: ParsedPolicy[] = [];
  const located: ParsedFile['located'] = [];
  // Validating a string with a template in it fails as a whole; fix the template first.
  let parsed = split.policy_templates.length === 0;
  for (const { text, start } of order) {
    const pos = source.positionOfIndex(start);
    const json = policyToJson(text);
    if (json.type === 'failure') {
      problems.push(...json.errors.map((e) => ({ ...cedarProblem(file.path, source, e), ...pos })));
      parsed = false;
      located.push({ start, end: start + text.length, id: undefined });
      continue;
    }
    const annotations = json.json.annotations ?? {};
    const id = annotationValue(annotations, 'id');
    const reason = annotationValue(annotations, 'reason');
    located.push({ start, end: start + text.length, id });
    if (id === undefined) {
      problems.push({ file: file.path, ...pos, message: 'policy has no @id("…") annotation; every policy needs a unique id' });
      continue;
    }
    if (!ID_PATTERN.test(id)) {
      problems.push({
        file: file.path,
        ...pos,
        policyId: id,
        message: '@id must be 1–128 characters without spaces, quotes or control characters',
      });
      continue;
    }
    const annotationProblem = checkApprovalAnnotations(annotations);
    if (annotationProblem !== undefined) {
      problems.push({ file: file.path, ...pos, policyId: id, message: annotationProblem });
      continue;
    }
    const actions = actionsOf(json.json);
    const resourceScope = resourceScopeOf(json.json);
    policies.push({
      id,
      ...(reason !== undefined ? { reason } : {}),
      file: file.path,
      line: pos.line,
      column: pos.column,
      effect: json.json.effect,
      ...(actions !== undefined ? { actions } : {}),
      ...(resourceScope !== undefined ? { resourceScope } : {}),
      text,
      annotations: Object.fromEntries(Object.entries(annotations).map(([k, v]) => [k, v ?? ''])),
    });
  }
  return { policies, parsed, located, problems };
}

/** Strict validation of one file's text against the schema; locations map back via offsets. */
function validateFile(file: PolicyFile, located: ParsedFile['located']): {
  problems: PolicyProblem[];
  warnings: PolicyProblem[];
} {
  if (located.length === 0) return { problems: [], warnings: [] };
  const source = new SourceText(file.text);
  const answer = validate({
    schema: PORT_SCHEMA,
    policies: { staticPolicies: file.text },
    validationSettings: { mode: 'strict' },
  });
  if (answer.type === 'failure') {
    return { problems: answer.errors.map((e) => cedarProblem(file.path, source, e)), warnings: [] };
  }
  const toProblem = (v: { policyId: string; error: DetailedError }): PolicyProblem => {
    const problem = cedarProblem(file.path, source, v.error);
    // Cedar numbers the policies of a string policy0… in file order; prefer the offset.
    const offset = offsetOf(source, v.error);
    const byOffset = offset >= 0 ? located.find((l) => l.start <= offset && offset < l.end) : undefined;
    const byIndex = /^policy(\d+)$/.exec(v.policyId);
    const entry = byOffset ?? (byIndex ? located[Number(byIndex[1])] : undefined);
    const id = entry?.id;
    if (problem.line === 0 && entry !== undefined) Object.assign(problem, source.positionOfIndex(entry.start));
    return {
      ...problem,
      ...(id !== undefined ? { policyId: id } : {}),
      message: renamePolicy(problem.message, v.policyId, id),
      ...(problem.help !== undefined ? { help: renamePolicy(problem.help, v.policyId, id) } : {}),
    };
  };
  return {
    problems: answer.validationErrors.map(toProblem),
    warnings: [
      ...answer.validationWarnings.map(toProblem),
      ...answer.otherWarnings.map((w) => cedarProblem(file.path, source, w)),
    ],
  };
}

function offsetOf(source: SourceText, error: DetailedError): number {
  const loc = error.sourceLocations?.[0];
  return loc === undefined ? -1 : source.indexOfByte(loc.start);
}

/** "for policy `policy3`, attribute…" → "attribute…" (the id is reported separately), other mentions → the @id. */
function renamePolicy(text: string, cedarId: string, id: string | undefined): string {
  const stripped = text.replace(new RegExp(`^for policy \`${cedarId}\`, `), '');
  return id === undefined ? stripped : stripped.split(`\`${cedarId}\``).join(`\`${id}\``);
}

function cedarProblem(file: string, source: SourceText, error: DetailedError): PolicyProblem {
  const loc = error.sourceLocations?.[0];
  const pos = loc === undefined ? { line: 0, column: 0 } : source.positionOfByte(loc.start);
  const help = error.help ?? loc?.label ?? undefined;
  return {
    file,
    ...pos,
    message: error.message.replace(/^failed to parse polic(y|ies)( with id `[^`]*`)? from string: /, ''),
    ...(help ? { help } : {}),
  };
}

/**
 * Approval rules ride on `unblock` policies as annotations (see src/approvals):
 * `@approvals_required("N")`, `@approval_groups("platform security")`, and on
 * `approve` permits `@allow_author("true")`. A malformed one is a load error, not a
 * silently weaker rule.
 */
function checkApprovalAnnotations(a: Record<string, string | null>): string | undefined {
  const required = a.approvals_required;
  if (required !== undefined && !/^[1-9][0-9]?$/.test(required ?? '')) {
    return '@approvals_required must be a whole number from 1 to 99';
  }
  const groups = a.approval_groups;
  if (groups !== undefined && !/^[^\s"]+( [^\s"]+)*$/.test(groups ?? '')) {
    return '@approval_groups must be group names separated by single spaces';
  }
  const author = a.allow_author;
  if (author !== undefined && author !== 'true') return '@allow_author must be "true" (or absent)';
  return undefined;
}

function annotationValue(annotations: Record<string, string | null>, key: string): string | undefined {
  const value = annotations[key];
  return typeof value === 'string' && value !== '' ? value : undefined;
}

/** The actions a policy's scope names; undefined = any action. */
export function actionsOf(json: PolicyJson): PortAction[] | undefined {
  const c = json.action;
  if (c.op === 'All') return undefined;
  const refs = 'entities' in c ? c.entities : 'entity' in c ? [c.entity] : [];
  const ids = refs.map((r) => ('__entity' in r ? r.__entity.id : r.id)).filter(isPortAction);
  return [...new Set(ids)];
}

/**
 * The policy's resource scope (https://docs.cedarpolicy.com/policies/syntax-policy.html#term-parc-resource),
 * so a refusal names only permits written for the resource asked about. Undefined for a
 * shape this code does not know (a template slot): the policy then counts for any resource.
 */
function resourceScopeOf(json: PolicyJson): ResourceScope | undefined {
  const c = json.resource;
  switch (c.op) {
    case 'All':
      return { op: 'all' };
    case '==':
    case 'in': {
      const entity = 'entity' in c ? scopeEntity(c.entity) : undefined;
      return entity === undefined ? undefined : { op: c.op, entity };
    }
    case 'is': {
      if (c.in === undefined) return { op: 'is', entityType: c.entity_type };
      const entity = 'entity' in c.in ? scopeEntity(c.in.entity) : undefined;
      return entity === undefined ? undefined : { op: 'is', entityType: c.entity_type, in: entity };
    }
    default:
      return undefined;
  }
}

function scopeEntity(uid: { __entity: { type: string; id: string } } | { type: string; id: string }): ScopeEntity | undefined {
  const e = '__entity' in uid ? uid.__entity : uid;
  return typeof e.type === 'string' && typeof e.id === 'string' ? { type: e.type, id: e.id } : undefined;
}

function wholeFile(file: string, message: string): PolicyProblem {
  return { file, line: 0, column: 0, message };
}

function sortProblems(list: PolicyProblem[]): PolicyProblem[] {
  return list.sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : a.line - b.line || a.column - b.column));
}
