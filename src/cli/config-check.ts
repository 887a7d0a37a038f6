/**
 * `port config check`: the config and the policy folder checked together, every problem
 * found rather than the first. Problems: YAML and schema errors, policies that don't
 * parse or validate, policies naming credentials or upstreams the config lacks, grants
 * that don't compile (src/grants; their policies count as the folder's), secret
 * references that don't resolve. Warnings: credentials and upstreams no permit can
 * reach, policies naming another organization, the policy loader's own warnings.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { secretReferences, type PortConfig } from '../config/config.js';
import { parseYamlConfig } from '../config/yaml-errors.js';
import { resolveSecretRef } from '../config/secret-ref.js';
import { ConfigError } from '../errors.js';
import { policyReferences, policyReferencesInDir, type PolicyReferences } from '../policy/entity-references.js';
import { formatProblem } from '../policy/errors.js';
import { loadPolicyDir, type PolicyFile } from '../policy/loader.js';
import { compileGrants } from '../grants/compile.js';
import { signingCredentials, unreachableTargets } from '../policy/reachability.js';
import { loadConfigForReading } from './read-config.js';
import { UsageError } from './usage-error.js';

export interface Finding {
  level: 'problem' | 'warning';
  /** One line: where, what was found, what is expected. */
  text: string;
}

export interface CheckResult {
  findings: Finding[];
  /** Set when the config itself validated. */
  config?: PortConfig;
  policies: number;
}

/** Throws UsageError when the file can't be read at all; everything else is a finding. */
export async function checkConfig(file: string): Promise<CheckResult> {
  const text = readConfigText(file);
  const findings: Finding[] = [];
  const problem = (t: string): void => void findings.push({ level: 'problem', text: t });
  const warning = (t: string): void => void findings.push({ level: 'warning', text: t });

  let raw: unknown;
  try {
    raw = parseYamlConfig(text, file);
  } catch (err) {
    // Nothing below can be trusted without the document.
    if (!(err instanceof ConfigError)) throw err;
    problem(err.message);
    return { findings, policies: 0 };
  }

  let config: PortConfig | undefined;
  try {
    config = loadConfigForReading(file);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    for (const line of configErrorLines(err.message)) problem(line);
  }

  // grants: compiled to Cedar, checked with the folder's policies (a grant that can't be right is a problem).
  let grantFiles: PolicyFile[] = [];
  if (config) {
    try {
      grantFiles = compileGrants(config).sources;
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      for (const line of configErrorLines(err.message)) problem(line);
    }
  }

  // The policy folder: from the validated config, else from the raw policies: key.
  const rawPolicies = field(raw, 'policies');
  const dir = config?.policies ?? path.resolve(path.dirname(path.resolve(file)), typeof rawPolicies === 'string' && rawPolicies !== '' ? rawPolicies : './policies');
  let policies = 0;
  if (!isDirectory(dir)) {
    if (!findings.some((f) => /(^|: )policies: /.test(f.text))) {
      problem(`${file}: policies: folder ${dir} does not exist; create it or point policies: at your *.cedar folder.`);
    }
  } else {
    const outcome = await loadPolicyDir(dir, grantFiles);
    for (const w of outcome.ok ? outcome.set.warnings : outcome.warnings) warning(formatProblem(w));
    if (outcome.ok) policies = outcome.set.policies.length;
    else for (const p of outcome.problems) problem(formatProblem(p));

    const refs = [...(await policyReferencesInDir(dir)), ...grantFiles.flatMap((f) => policyReferences(f.path, f.text))];
    const names = {
      credentials: config ? Object.keys(config.credentials) : Object.keys(asRecord(field(raw, 'credentials'))),
      upstreams: config ? Object.keys(config.upstreams) : Object.keys(asRecord(field(raw, 'upstreams'))),
    };
    const rawOrg = field(asRecord(field(raw, 'buildkite')), 'organization');
    const organization = config?.buildkite.organization ?? (typeof rawOrg === 'string' ? rawOrg : undefined);
    checkReferences(file, refs, names, organization, problem, warning);
    if (config) checkReach(file, config, refs, dir, warning);
  }

  if (config) {
    for (const source of secretReferences(config)) {
      // A command: value runs only when a job asks for it; running it here could have effects.
      if (source.kind === 'command') continue;
      try {
        resolveSecretRef(source.ref, source.key, source.baseDir);
      } catch (err) {
        if (!(err instanceof ConfigError)) throw err;
        problem(`${file}: ${err.message}`);
      }
    }
  }
  return { findings, ...(config ? { config } : {}), policies };
}

function readConfigText(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    if (code === 'ENOENT') throw new UsageError(`${file}: no such file; pass the config with -c PATH, or write a starter one with port init --org SLUG`);
    throw new UsageError(`${file}: cannot be read (${code})`);
  }
}

/** A ConfigError's message as lines: the loader writes one problem a line, each starting with the file. */
function configErrorLines(message: string): string[] {
  return message.split('\n').filter((l) => l !== '');
}

type Report = (text: string) => void;

/** Policies naming credentials or upstreams the config lacks, or another organization. */
function checkReferences(
  file: string,
  refs: readonly PolicyReferences[],
  names: { credentials: string[]; upstreams: string[] },
  organization: string | undefined,
  problem: Report,
  warning: Report,
): void {
  for (const p of refs) {
    const who = p.id !== undefined ? `policy ${p.id}: ` : '';
    for (const r of p.references) {
      const where = `${p.file}:${r.line}:${r.column}: ${who}`;
      const literal = `Port::${r.type}::${JSON.stringify(r.id)}`;
      if (r.type === 'Credential' && !names.credentials.includes(r.id)) {
        problem(`${where}${literal} is not a credential in ${file}; add it under credentials: or use one of: ${list(names.credentials)}.`);
      } else if (r.type === 'Upstream' && !names.upstreams.includes(r.id)) {
        problem(`${where}${literal} is not an upstream in ${file}; add it under upstreams: or use one of: ${list(names.upstreams)}.`);
      } else if (organization !== undefined && otherOrganization(r.type, r.id, organization)) {
        warning(`${where}${literal} is outside buildkite.organization ${organization}: Port accepts tokens of ${organization} only, so this never matches.`);
      }
    }
  }
}

function otherOrganization(type: string, id: string, organization: string): boolean {
  if (type === 'Organization') return id !== organization;
  // Pipeline, Build and BlockStep ids start with the organization slug ("acme/deploy/…").
  if (type === 'Pipeline' || type === 'Build' || type === 'BlockStep') return !id.startsWith(`${organization}/`);
  return false;
}

/** Credentials and upstreams no permit can reach (src/policy/reachability.ts says how). */
function checkReach(file: string, config: PortConfig, refs: readonly PolicyReferences[], dir: string, warning: Report): void {
  const targets = { credentials: Object.keys(config.credentials), upstreams: Object.keys(config.upstreams), signers: signingCredentials(config.upstreams) };
  for (const { kind, name } of unreachableTargets(targets, refs)) {
    if (kind === 'credential') {
      warning(`${file}: credentials.${name}: no permit in ${dir} allows action "assume" on Port::Credential::${JSON.stringify(name)}, so no job can get it; add a permit or remove the credential.`);
    } else {
      warning(`${file}: upstreams.${name}: no permit in ${dir} allows action "proxy" on Port::Upstream::${JSON.stringify(name)}, so the relay refuses every request to it; add a permit or remove the upstream.`);
    }
  }
}

function field(node: unknown, key: string): unknown {
  return typeof node === 'object' && node !== null && !Array.isArray(node) ? (node as Record<string, unknown>)[key] : undefined;
}

function asRecord(node: unknown): Record<string, unknown> {
  return typeof node === 'object' && node !== null && !Array.isArray(node) ? (node as Record<string, unknown>) : {};
}

function list(names: string[]): string {
  return names.length === 0 ? '(none configured)' : names.join(', ');
}

function isDirectory(p: string): boolean {
  return existsSync(p) && statSync(p).isDirectory();
}
