/**
 * `port policy test`: runs the YAML test cases that live **beside the policies**, as
 * `*.test.yaml` (or `*.test.yml`) files directly in the policy folder — the loader reads
 * only `*.cedar`, so they never affect the policy set or its revision.
 *
 * File format:
 *
 *   defaults:                      # optional; merged under every case's claims
 *     claims: { organization_slug: acme }
 *   cases:
 *     - name: deploys from main may use the deploy token
 *       claims:                    # Buildkite token claims (see buildkite.com/docs/agent/v3/cli-oidc), partial:
 *         pipeline_slug: deploy    #   the rest come from DEFAULT_CLAIMS in job-request.ts
 *         build_branch: main
 *       action: assume             # exchange | assume | proxy
 *       resource: { credential: deploy-token }   # assume: credential; proxy: upstream;
 *                                                # exchange: none (the claims' organization)
 *       context: {}                # optional; merged over the action's default context
 *       creator:                   # optional: who started the build (else unknown)
 *         email: dev@acme.example  #   groups default to none, active to true
 *         groups: [deployers]
 *       expect:
 *         decision: allow          # allow | deny
 *         policies: [deploy-token-main]   # optional: exactly the determining policy ids
 *         reasons: ["from main"]   # optional: substrings of the decision's reason, which
 *                                  #   quotes each determining policy's @reason
 *         errors: []               # optional: ids of policies expected to fail evaluating;
 *                                  #   an unexpected evaluation error fails the case
 */
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import type { PolicyEngine } from './engine.js';
import { buildJobRequest, claimsWithDefaults, JOB_ACTIONS } from './job-request.js';
import type { CedarValue, Decision } from './types.js';

const claimsSchema = z.record(z.string(), z.json());

const caseSchema = z.strictObject({
  name: z.string().min(1),
  claims: claimsSchema.default({}),
  action: z.enum(JOB_ACTIONS),
  resource: z.union([z.strictObject({ credential: z.string().min(1) }), z.strictObject({ upstream: z.string().min(1) })]).optional(),
  context: z.record(z.string(), z.json()).optional(),
  creator: z
    .strictObject({ email: z.string().min(1), groups: z.array(z.string().min(1)).default([]), active: z.boolean().default(true) })
    .optional(),
  expect: z.strictObject({
    decision: z.enum(['allow', 'deny']),
    policies: z.array(z.string()).optional(),
    reasons: z.array(z.string()).optional(),
    errors: z.array(z.string()).optional(),
  }),
});

const fileSchema = z.strictObject({
  defaults: z.strictObject({ claims: claimsSchema.default({}) }).optional(),
  cases: z.array(caseSchema).min(1),
});

export type PolicyTestCase = z.infer<typeof caseSchema>;
export type PolicyTestFile = z.infer<typeof fileSchema>;

export interface CaseResult {
  file: string;
  name: string;
  passed: boolean;
  /** What differed from `expect`, one line each; empty when passed. */
  differences: string[];
  /** Absent when the request could not be built (bad claims or resource). */
  decision?: Decision;
}

/** A test file that could not be read or is not in the format above. */
export interface TestFileError {
  file: string;
  case?: string;
  message: string;
}

export interface TestReport {
  files: string[];
  cases: CaseResult[];
  fileErrors: TestFileError[];
  passed: number;
  failed: number;
  /** `N passed, M failed` (plus invalid files, if any). */
  summary: string;
}

export async function runPolicyTests(engine: PolicyEngine, dir: string = engine.dir): Promise<TestReport> {
  const names = (await readdir(dir)).filter((n) => /\.test\.ya?ml$/.test(n) && !n.startsWith('.')).sort();
  const files = names.map((n) => path.join(dir, n));
  const cases: CaseResult[] = [];
  const fileErrors: TestFileError[] = [];
  for (const file of files) {
    const parsed = parseTestFile(file, await readFile(file, 'utf8'));
    if (!parsed.ok) {
      fileErrors.push(...parsed.errors);
      continue;
    }
    for (const c of parsed.value.cases) cases.push(runCase(engine, file, c, parsed.value.defaults?.claims ?? {}));
  }
  const passed = cases.filter((c) => c.passed).length;
  const failed = cases.length - passed;
  const invalid = new Set(fileErrors.map((e) => e.file)).size;
  const summary = `${passed} passed, ${failed} failed${invalid > 0 ? `, ${invalid} invalid test file${invalid === 1 ? '' : 's'}` : ''}`;
  return { files, cases, fileErrors, passed, failed, summary };
}

export function parseTestFile(file: string, text: string): { ok: true; value: PolicyTestFile } | { ok: false; errors: TestFileError[] } {
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (err) {
    return { ok: false, errors: [{ file, message: `not valid YAML: ${err instanceof Error ? err.message : String(err)}` }] };
  }
  const result = fileSchema.safeParse(raw);
  if (!result.success) {
    return {
      ok: false,
      errors: result.error.issues.map((issue) => {
        const caseName = nameOfCase(raw, issue.path);
        return {
          file,
          ...(caseName !== undefined ? { case: caseName } : {}),
          message: `${issue.path.length > 0 ? `${issue.path.map(String).join('.')}: ` : ''}${issue.message}`,
        };
      }),
    };
  }
  const errors: TestFileError[] = [];
  const seen = new Set<string>();
  for (const c of result.data.cases) {
    if (seen.has(c.name)) errors.push({ file, case: c.name, message: 'two cases have this name; names must be unique in a file' });
    seen.add(c.name);
  }
  return errors.length > 0 ? { ok: false, errors } : { ok: true, value: result.data };
}

/** The `name` of the case an issue path points into (`cases.3.expect…`), if it has one. */
function nameOfCase(raw: unknown, issuePath: readonly PropertyKey[]): string | undefined {
  if (issuePath[0] !== 'cases' || typeof issuePath[1] !== 'number') return undefined;
  const list = (raw as { cases?: unknown } | null)?.cases;
  const item: unknown = Array.isArray(list) ? list[issuePath[1]] : undefined;
  const name = (item as { name?: unknown } | null | undefined)?.name;
  return typeof name === 'string' ? name : `#${issuePath[1] + 1}`;
}

export function runCase(engine: PolicyEngine, file: string, c: PolicyTestCase, defaultClaims: Record<string, unknown> = {}): CaseResult {
  let decision: Decision;
  try {
    const context = c.context === undefined ? undefined : toCedarRecord(c.context, 'context');
    const { request } = buildJobRequest(claimsWithDefaults(defaultClaims, c.claims), {
      action: c.action,
      ...(c.resource ?? {}),
      ...(context !== undefined ? { context } : {}),
      ...(c.creator !== undefined ? { creator: c.creator } : {}),
    });
    decision = engine.decide(request);
  } catch (err) {
    return { file, name: c.name, passed: false, differences: [`cannot build the request: ${err instanceof Error ? err.message : String(err)}`] };
  }
  const differences = compare(c.expect, decision);
  return { file, name: c.name, passed: differences.length === 0, differences, decision };
}

function compare(expect: PolicyTestCase['expect'], d: Decision): string[] {
  const out: string[] = [];
  if (d.decision !== expect.decision) out.push(`decision: expected ${expect.decision}, got ${d.decision} (${d.reason})`);
  if (expect.policies !== undefined) {
    const want = [...new Set(expect.policies)].sort();
    const got = d.determining.map((p) => p.id).sort();
    if (want.join('\n') !== got.join('\n')) out.push(`policies: expected [${want.join(', ')}], got [${got.join(', ')}]`);
  }
  for (const r of expect.reasons ?? []) {
    if (!d.reason.includes(r)) out.push(`reasons: "${r}" is not in the reason "${d.reason}"`);
  }
  const erroring = [...new Set(d.errors.map((e) => e.policyId ?? '(request)'))].sort();
  const wantErrors = [...new Set(expect.errors ?? [])].sort();
  if (erroring.join('\n') !== wantErrors.join('\n')) {
    const detail = d.errors.map((e) => `${e.policyId ?? 'request'}: ${e.message}`).join('; ');
    out.push(`errors: expected [${wantErrors.join(', ')}], got [${erroring.join(', ')}]${detail ? ` (${detail})` : ''}`);
  }
  return out;
}

/** YAML/JSON → Cedar values: Cedar has no null and no fractional numbers (Long only). */
export function toCedarRecord(record: Record<string, unknown>, where: string): Record<string, CedarValue> {
  return Object.fromEntries(Object.entries(record).map(([k, v]) => [k, toCedarValue(v, `${where}.${k}`)]));
}

function toCedarValue(value: unknown, where: string): CedarValue {
  if (typeof value === 'string' || typeof value === 'boolean') return value;
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value)) throw new TypeError(`${where} must be an integer (Cedar has only Long numbers)`);
    return value;
  }
  if (Array.isArray(value)) return value.map((v, i) => toCedarValue(v, `${where}[${i}]`));
  if (typeof value === 'object' && value !== null) return toCedarRecord(value as Record<string, unknown>, where);
  throw new TypeError(`${where} is ${value === null ? 'null' : typeof value}; Cedar values are strings, integers, booleans, lists and maps`);
}
