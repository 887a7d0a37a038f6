/**
 * The grants Port compiles: port.yaml's `grants:` section plus the files of
 * `grants.directory` — `*.yaml` and `*.yml` files directly in that folder (read in name order; not
 * recursive; dot-files skipped), each with `roles:` and `bindings:` shaped exactly like the
 * section, so a team can own its grants in its own file. Each file is validated with the
 * section's own schema, and its problems read like config errors:
 * `grants/deploy.yaml: roles.deployer.credentials[0]: found "Prod"; expected …`.
 *
 * A role is defined once, wherever: a second definition is an error naming both places,
 * never a silent override (which definition won would depend on file names).
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import type { z } from 'zod';
import type { GrantBindingConfig, GrantRoleConfig, PortConfig } from '../config/config.js';
import { describeIssues } from '../config/issues.js';
import { configSchema } from '../config/schema.js';
import { parseYamlConfig } from '../config/yaml-errors.js';
import { ConfigError } from '../errors.js';
import { GrantsError } from './errors.js';

export type GrantRole = GrantRoleConfig & { source: string };

export interface GrantsFromDirectory {
  /** The files read, absolute, in the order read. */
  files: string[];
  roles: Record<string, GrantRole>;
  /** `source` is the file as shown (relative to port.yaml's folder), `index` its place in the file's `bindings:`. */
  bindings: GrantBindingConfig[];
}

/** Every role and binding, port.yaml's first, then the directory's in file order. */
export interface AllGrants {
  roles: Record<string, GrantRole>;
  bindings: GrantBindingConfig[];
}

/** The `source` the config loader gives grants written in port.yaml itself. */
export const CONFIG_SOURCE = 'port.yaml';

/** port.yaml's `grants:` section without `directory` (a grants file can't point to another folder). */
const fileSchema = configSchema.shape.grants.unwrap().omit({ directory: true });

type GrantsFile = z.output<typeof fileSchema>;

/** The key of a role where it is written: `grants.roles.NAME` in port.yaml, `roles.NAME` in a grants file. */
export function roleKey(role: Pick<GrantRole, 'source' | 'name'>): string {
  return `${role.source === CONFIG_SOURCE ? 'grants.' : ''}roles.${role.name}`;
}

/** The key of a binding where it is written: `grants.bindings[0]` in port.yaml, `bindings[0]` in a grants file. */
export function bindingKey(binding: Pick<GrantBindingConfig, 'source' | 'index'>): string {
  return `${binding.source === CONFIG_SOURCE ? 'grants.' : ''}bindings[${binding.index}]`;
}

/** The file a role or binding was written in, as a person would name it. */
export function shownSource(source: string, config: Pick<PortConfig, 'file'>): string {
  return source === CONFIG_SOURCE ? path.basename(config.file) : source;
}

/** Reads `grants.directory` when the config sets it; undefined otherwise. Throws GrantsError. */
export function readGrantsDirectory(config: Pick<PortConfig, 'file' | 'grants'>): GrantsFromDirectory | undefined {
  const dir = config.grants.directory;
  if (dir === undefined) return undefined;
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw new GrantsError([`${path.basename(config.file)}: grants.directory: folder ${dir} does not exist; create it or remove grants.directory.`]);
  }
  return loadGrantsDirectory(dir, path.dirname(config.file), { skip: config.file });
}

/**
 * Reads and validates every `*.yaml` file directly in `dir`; `baseDir` (port.yaml's folder)
 * is what file names are shown relative to, and `skip` (port.yaml itself, when the folder is
 * its own) is not a grants file. Every problem of every file is reported at once.
 */
export function loadGrantsDirectory(dir: string, baseDir: string, opts: { skip?: string } = {}): GrantsFromDirectory {
  const names = readdirSync(dir)
    .filter((n) => (n.endsWith('.yaml') || n.endsWith('.yml')) && !n.startsWith('.') && path.join(dir, n) !== opts.skip)
    .sort();
  const problems: string[] = [];
  const found: GrantsFromDirectory = { files: [], roles: {}, bindings: [] };
  for (const name of names) {
    const file = path.join(dir, name);
    const shown = shownPath(file, baseDir);
    let text: string;
    try {
      // stat, not the dirent: Kubernetes ConfigMap volumes mount files as symlinks.
      if (!statSync(file).isFile()) continue;
      text = readFileSync(file, 'utf8');
    } catch (err) {
      // A dangling link or an unreadable file is a grants problem like any other, not a crash.
      problems.push(`${shown}: cannot be read (${err instanceof Error && 'code' in err ? String(err.code) : 'unreadable'}); fix the file or remove it from the grants folder.`);
      continue;
    }
    const parsed = parseGrantsFile(text, shown);
    found.files.push(file);
    if (!parsed.ok) {
      problems.push(...parsed.problems);
      continue;
    }
    for (const [roleName, r] of Object.entries(parsed.grants.roles)) {
      const role = roleOf(roleName, r, shown);
      const first = Object.hasOwn(found.roles, roleName) ? found.roles[roleName] : undefined;
      if (first !== undefined) problems.push(definedTwice(role, first));
      else found.roles[roleName] = role;
    }
    parsed.grants.bindings.forEach((b, index) => found.bindings.push({ ...b, source: shown, index }));
  }
  if (problems.length > 0) throw new GrantsError(problems);
  return found;
}

/** port.yaml's grants and the directory's together; a role defined in both is an error naming both places. */
export function allGrants(config: Pick<PortConfig, 'file' | 'grants'>, fromDirectory: GrantsFromDirectory | undefined): AllGrants {
  const roles: Record<string, GrantRole> = { ...config.grants.roles };
  const problems: string[] = [];
  for (const role of Object.values(fromDirectory?.roles ?? {})) {
    const first = Object.hasOwn(roles, role.name) ? roles[role.name] : undefined;
    if (first !== undefined) problems.push(definedTwice(role, first, config));
    else roles[role.name] = role;
  }
  if (problems.length > 0) throw new GrantsError(problems);
  return { roles, bindings: [...config.grants.bindings, ...(fromDirectory?.bindings ?? [])] };
}

function definedTwice(again: GrantRole, first: GrantRole, config?: Pick<PortConfig, 'file'>): string {
  const show = (source: string) => (config ? shownSource(source, config) : source);
  return `${show(again.source)}: ${roleKey(again)}: role "${again.name}" is already defined in ${show(first.source)} (${roleKey(first)}); define each role once — rename one or merge them.`;
}

type Parsed = { ok: true; grants: GrantsFile } | { ok: false; problems: string[] };

/** One grants file's text; `shown` names it in every problem. */
export function parseGrantsFile(text: string, shown: string): Parsed {
  let raw: unknown;
  try {
    raw = parseYamlConfig(text, shown);
  } catch (err) {
    if (err instanceof ConfigError) return { ok: false, problems: [err.message] };
    throw err;
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    return { ok: false, problems: [`${shown}: found ${Array.isArray(raw) ? 'a list' : 'a single value'}; expected a map with roles: and bindings: (like port.yaml's grants: section).`] };
  }
  const problems: string[] = [];
  const content = { ...(raw as Record<string, unknown>) };
  if ('directory' in content) {
    problems.push(`${shown}: directory: a grants file can't name another folder; grants.directory is set in port.yaml only — remove it here.`);
    delete content.directory;
  }
  const result = fileSchema.safeParse(content, { reportInput: true });
  if (!result.success) {
    // Described against port.yaml's schema (its hints and examples), at grants.<path>; shown at <path>.
    const issues = result.error.issues.map((i) => ({ ...i, path: ['grants', ...i.path] }));
    const prefix = `${shown}: grants.`;
    for (const line of describeIssues(shown, issues, { grants: content })) {
      problems.push(line.startsWith(prefix) ? `${shown}: ${line.slice(prefix.length)}` : line);
    }
  }
  if (problems.length > 0 || !result.success) return { ok: false, problems };
  return { ok: true, grants: result.data };
}

function roleOf(name: string, r: GrantsFile['roles'][string], source: string): GrantRole {
  return {
    name,
    ...(r.description !== undefined ? { description: r.description } : {}),
    credentials: r.credentials,
    upstreams: r.upstreams,
    approve: r.approve,
    scale: r.scale,
    source,
  };
}

/** `grants/deploy.yaml`, relative to port.yaml's folder; always with a `/`, so never the config's own `port.yaml`. */
function shownPath(file: string, baseDir: string): string {
  const rel = path.relative(baseDir, file);
  return rel.includes(path.sep) ? rel : `.${path.sep}${rel}`;
}
