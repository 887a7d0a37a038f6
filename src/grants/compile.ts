/**
 * RBAC on top of Cedar: the `grants:` roles and bindings compiled to Cedar policies that
 * join the policy folder's (a hand-written `forbid` still wins: Cedar denies when any
 * forbid holds, https://docs.cedarpolicy.com/auth/authorization.html).
 *
 * What a binding compiles to, per permission of its role:
 * - `credentials` → one `assume` permit per credential; `upstreams` → one `proxy` permit per
 *   upstream (its entries' methods and paths OR-ed); and, when the role has either, one
 *   `exchange` permit, since a job can't hold a token without it. The principal is a `Job`
 *   matching every kind of subject the binding lists — pipelines (with their branch and
 *   tag patterns), pools, groups (of the build's creator) — and any one within a kind.
 * - `approve` → one `approve` permit per pipeline for the people of the binding's groups,
 *   never on their own builds (`context.is_author == false`).
 * - `scale` → one `scale` permit per pool for the binding's autoscalers.
 *
 * Ids are `grant.<role>.<binding>.<permission>`: `<binding>` is 8 hex digits of the
 * SHA-256 of the binding's canonical JSON (its role and subjects, lists sorted), so an id
 * stays the same when other bindings are added, removed or reordered, when files are
 * renamed, and when the binding's own lists are reordered; it changes only when the
 * binding's subjects change. `<permission>` is `exchange`, `assume.<credential>`,
 * `proxy.<upstream>`, `approve.<org>/<pipeline>` or `scale.<cluster>/<queue>`.
 *
 * A grant that can't be right is refused, all problems at once: a role naming a credential,
 * upstream, pool or autoscaler the config lacks; a binding with no subject (it would grant
 * everyone), or without the subjects its role's permissions need, or with subjects none of
 * them use; a pipeline of another organization.
 */
import { createHash } from 'node:crypto';
import type { GrantBindingConfig, PortConfig } from '../config/config.js';
import type { PolicyFile } from '../policy/loader.js';
import { allOf, anyOf, commentText, entityLiteral, matches, shownValue, stringLiteral } from './cedar-text.js';
import { GrantsError } from './errors.js';
import { allGrants, bindingKey, CONFIG_SOURCE, readGrantsDirectory, roleKey, shownSource, type GrantRole, type GrantsFromDirectory } from './load.js';

export interface CompiledGrantPolicy {
  /** The `@id`: `grant.<role>.<binding hash>.<permission>`. */
  id: string;
  /** The policy's Cedar text, annotations included. */
  text: string;
  /** The `@reason`: the role's description, else a generated sentence. */
  reason: string;
  role: string;
  /** `grants:<role>`: the source name the policy loader, explain and the decision log show. */
  source: string;
  /** Where the binding was written, e.g. `grants/deploy.yaml bindings[0]`. */
  binding: string;
  /** `exchange`, `assume.<credential>`, `proxy.<upstream>`, `approve.<org>/<pipeline>` or `scale.<pool>`. */
  permission: string;
}

export interface CompiledGrants {
  policies: CompiledGrantPolicy[];
  /** One policy source per role (`grants:<role>`, roles by name), with a header comment per role and binding: what the policy loader reads. */
  sources: PolicyFile[];
}

/** The loader's limit on an `@id` (src/policy/loader.ts). */
const MAX_ID_LENGTH = 128;

/** `grants:<role>`. */
export function grantSourceName(role: string): string {
  return `grants:${role}`;
}

/**
 * Compiles port.yaml's grants and `fromDirectory`'s (read from `grants.directory` when not
 * given). Throws GrantsError listing every problem.
 */
export function compileGrants(config: PortConfig, fromDirectory: GrantsFromDirectory | undefined = readGrantsDirectory(config)): CompiledGrants {
  const grants = allGrants(config, fromDirectory);
  const org = config.buildkite.organization;
  const problems: string[] = [];
  const at = (source: string, key: string) => `${shownSource(source, config)}: ${key}`;

  for (const role of Object.values(grants.roles)) problems.push(...checkRole(role, config, at(role.source, roleKey(role))));

  const byRole = new Map<string, { binding: GrantBindingConfig; policies: CompiledGrantPolicy[] }[]>();
  const seen = new Map<string, GrantBindingConfig>();
  for (const binding of grants.bindings) {
    const where = at(binding.source, bindingKey(binding));
    // Own keys only: a binding of role `constructor` must not find Object.prototype's.
    const role = Object.hasOwn(grants.roles, binding.role) ? grants.roles[binding.role] : undefined;
    if (role === undefined) {
      const known = Object.keys(grants.roles).sort();
      problems.push(`${where}.role: "${binding.role}" is not a role; define it under roles: or use one of: ${known.length > 0 ? known.join(', ') : '(none defined)'}.`);
      continue;
    }
    const bindingProblems = checkBinding(binding, role, config, where);
    if (bindingProblems.length > 0) {
      problems.push(...bindingProblems);
      continue;
    }
    const hash = bindingHash(binding, org);
    const first = seen.get(`${binding.role}.${hash}`);
    if (first !== undefined) {
      problems.push(`${where}: grants role ${binding.role} to the same subjects as ${shownSource(first.source, config)} ${bindingKey(first)}; remove one of them.`);
      continue;
    }
    seen.set(`${binding.role}.${hash}`, binding);
    const shown = `${shownSource(binding.source, config)} ${bindingKey(binding)}`;
    const policies = compileBinding(binding, role, hash, org, shown);
    for (const p of policies) {
      if (p.id.length > MAX_ID_LENGTH) {
        problems.push(`${where}: the policy id ${p.id.slice(0, 40)}… is longer than ${MAX_ID_LENGTH} characters; shorten the role or the names it grants.`);
      }
    }
    byRole.set(role.name, [...(byRole.get(role.name) ?? []), { binding, policies }]);
  }
  if (problems.length > 0) throw new GrantsError(problems);

  const roles = [...byRole.keys()].sort();
  const policies = roles.flatMap((r) => byRole.get(r)!.flatMap((b) => b.policies));
  const sources = roles.map((r) => roleSource(grants.roles[r]!, byRole.get(r)!, config));
  return { policies, sources };
}

/** A role's names must exist in the config: a grant of nothing that exists can't be right. */
function checkRole(role: GrantRole, config: PortConfig, where: string): string[] {
  const problems: string[] = [];
  const names = (o: object) => {
    const list = Object.keys(o).sort();
    return list.length > 0 ? list.join(', ') : '(none configured)';
  };
  role.credentials.forEach((c, i) => {
    if (!Object.hasOwn(config.credentials, c)) problems.push(`${where}.credentials[${i}]: "${c}" is not a credential in ${shownSource(CONFIG_SOURCE, config)}; add it under credentials: or use one of: ${names(config.credentials)}.`);
  });
  role.upstreams.forEach((u, i) => {
    if (!Object.hasOwn(config.upstreams, u.upstream)) problems.push(`${where}.upstreams[${i}].upstream: "${u.upstream}" is not an upstream in ${shownSource(CONFIG_SOURCE, config)}; add it under upstreams: or use one of: ${names(config.upstreams)}.`);
  });
  role.approve.forEach((p, i) => {
    const org = p.includes('/') ? p.split('/')[0] : undefined;
    if (org !== undefined && org !== config.buildkite.organization) {
      problems.push(`${where}.approve[${i}]: "${p}" is a pipeline of ${org}, but Port serves buildkite.organization ${config.buildkite.organization} only; write the pipeline's slug.`);
    }
  });
  role.scale.forEach((pool, i) => {
    if (pool.endsWith('/*')) {
      // The scale request's resource is the Pool `cluster/queue`; Cedar can't match an entity id by pattern.
      problems.push(`${where}.scale[${i}]: "${pool}" names every queue of a cluster, but a scale grant names one pool; list each CLUSTER/QUEUE.`);
    } else if (!Object.hasOwn(config.pools, pool)) {
      problems.push(`${where}.scale[${i}]: "${pool}" is not a pool in ${shownSource(CONFIG_SOURCE, config)}; add it under pools: (with its autoscalers) or use one of: ${names(config.pools)}.`);
    }
  });
  return problems;
}

/** Subjects: at least one; the ones each permission needs; none that no permission uses. */
function checkBinding(b: GrantBindingConfig, role: GrantRole, config: PortConfig, where: string): string[] {
  const org = config.buildkite.organization;
  const problems: string[] = [];
  const jobKinds = b.pipelines.length + b.pools.length + b.groups.length > 0;
  const grantsJobs = role.credentials.length + role.upstreams.length > 0;
  if (jobKinds === false && b.autoscalers.length === 0) {
    return [`${where}: names no pipelines, pools, groups or autoscalers, so it would grant role ${role.name} to everyone; list its subjects.`];
  }
  if (grantsJobs && !jobKinds) {
    problems.push(`${where}: role ${role.name} grants credentials or upstreams to jobs, but the binding names no pipelines, pools or groups, so every job would get them; list the jobs' pipelines, pools or groups.`);
  }
  if (role.approve.length > 0 && b.groups.length === 0) {
    problems.push(`${where}.groups: role ${role.name} grants approve, which people hold through their groups; list the approvers' groups.`);
  }
  if (role.scale.length > 0 && b.autoscalers.length === 0) {
    problems.push(`${where}.autoscalers: role ${role.name} grants scale, which autoscalers hold; list them.`);
  }
  if (!grantsJobs && (b.pipelines.length > 0 || b.pools.length > 0)) {
    const kind = b.pipelines.length > 0 ? 'pipelines' : 'pools';
    problems.push(`${where}.${kind}: role ${role.name} grants jobs nothing (no credentials or upstreams), so ${kind} here would have no effect; remove them or add the permissions to the role.`);
  }
  if (!grantsJobs && role.approve.length === 0 && b.groups.length > 0) {
    problems.push(`${where}.groups: role ${role.name} grants neither jobs nor approvers anything, so groups here would have no effect; remove them.`);
  }
  if (role.scale.length === 0 && b.autoscalers.length > 0) {
    problems.push(`${where}.autoscalers: role ${role.name} grants no scale, so autoscalers here would have no effect; remove them or add scale to the role.`);
  }
  b.autoscalers.forEach((a, i) => {
    if (!Object.hasOwn(config.scaling.autoscalers, a)) {
      const known = Object.keys(config.scaling.autoscalers).sort();
      problems.push(`${where}.autoscalers[${i}]: "${a}" is not under scaling.autoscalers; add it there with its token or use one of: ${known.length > 0 ? known.join(', ') : '(none configured)'}.`);
      return;
    }
    // The scale endpoint hears only a pool's own autoscalers: a grant to another is dead.
    for (const pool of role.scale) {
      const entry = config.pools[pool];
      if (entry !== undefined && !entry.autoscalers.includes(a)) {
        problems.push(`${where}.autoscalers[${i}]: "${a}" is not in pools.${pool}.autoscalers, so it can't ask to scale ${pool}; add it there.`);
      }
    }
  });
  b.pipelines.forEach((p, i) => {
    const other = p.pipeline.includes('/') ? p.pipeline.split('/')[0] : undefined;
    if (other !== undefined && other !== org) {
      problems.push(`${where}.pipelines[${i}].pipeline: "${p.pipeline}" is a pipeline of ${other}, but Port serves buildkite.organization ${org} only; write the pipeline's slug.`);
    }
  });
  return problems;
}

/** `deploy` → `acme/deploy`; `acme/deploy` stays. */
function pipelineId(pipeline: string, org: string): string {
  return pipeline.includes('/') ? pipeline : `${org}/${pipeline}`;
}

const sortedUnique = (list: readonly string[]) => [...new Set(list)].sort();

/** 8 hex digits of SHA-256 over the binding's role and subjects, in a canonical JSON form (keys in fixed order, lists sorted). */
export function bindingHash(b: Pick<GrantBindingConfig, 'role' | 'pipelines' | 'pools' | 'groups' | 'autoscalers'>, org: string): string {
  const pipelines = sortedUnique(
    b.pipelines.map((p) => JSON.stringify({ pipeline: pipelineId(p.pipeline, org), branches: sortedUnique(p.branches), tags: sortedUnique(p.tags) })),
  ).map((s) => JSON.parse(s) as unknown);
  const canonical = JSON.stringify({ role: b.role, pipelines, pools: sortedUnique(b.pools), groups: sortedUnique(b.groups), autoscalers: sortedUnique(b.autoscalers) });
  return createHash('sha256').update(canonical).digest('hex').slice(0, 8);
}

interface Clause {
  /** Combined with `&&` before the alternatives. */
  all?: string[];
  /** Any one of these (`||`); empty: none needed. */
  any: string[];
}

function compileBinding(b: GrantBindingConfig, role: GrantRole, hash: string, org: string, shown: string): CompiledGrantPolicy[] {
  const prefix = `grant.${role.name}.${hash}`;
  const out: CompiledGrantPolicy[] = [];
  const add = (permission: string, effectScope: string[], clauses: Clause[], generated: string) => {
    const id = `${prefix}.${permission}`;
    const reason = role.description !== undefined && role.description.trim() !== '' ? role.description.trim() : `role ${role.name}: ${generated}`;
    const when = clauses.filter((c) => c.any.length > 0 || (c.all?.length ?? 0) > 0).map(renderWhen);
    const text = [`@id(${stringLiteral(id)})`, `@reason(${stringLiteral(reason)})`, `permit (\n  ${effectScope.join(',\n  ')}\n)${when.map((w) => `\n${w}`).join('')};`].join('\n');
    out.push({ id, text, reason, role: role.name, source: grantSourceName(role.name), binding: shown, permission });
  };

  if (role.credentials.length + role.upstreams.length > 0) {
    const jobs = jobClauses(b, org);
    const who = jobsPhrase(b, org);
    add('exchange', ['principal is Port::Job', 'action == Port::Action::"exchange"', `resource == ${entityLiteral('Organization', org)}`], jobs, `${who} may hold a Port token`);
    for (const credential of sortedUnique(role.credentials)) {
      add(`assume.${credential}`, ['principal is Port::Job', 'action == Port::Action::"assume"', `resource == ${entityLiteral('Credential', credential)}`], jobs, `${who} may assume ${credential}`);
    }
    const byUpstream = new Map<string, GrantRole['upstreams']>();
    for (const u of role.upstreams) byUpstream.set(u.upstream, [...(byUpstream.get(u.upstream) ?? []), u]);
    for (const [upstream, entries] of [...byUpstream].sort(([a], [c]) => (a < c ? -1 : a > c ? 1 : 0))) {
      add(`proxy.${upstream}`, ['principal is Port::Job', 'action == Port::Action::"proxy"', `resource == ${entityLiteral('Upstream', upstream)}`], [...jobs, requestClause(entries)], `${who} may reach ${upstream}${requestPhrase(entries)}`);
    }
  }
  for (const pipeline of sortedUnique(role.approve.map((p) => pipelineId(p, org)))) {
    const groups = sortedUnique(b.groups);
    add(
      `approve.${pipeline}`,
      ['principal is Port::User', 'action == Port::Action::"approve"', `resource in ${entityLiteral('Pipeline', pipeline)}`],
      [{ any: groups.map((g) => `principal in ${entityLiteral('Group', g)}`) }, { all: ['principal.active', 'context.is_author == false'], any: [] }],
      `members of ${list(groups.map(shownValue))} may approve block steps of ${pipeline}, never of their own builds`,
    );
  }
  for (const pool of sortedUnique(role.scale)) {
    const autoscalers = sortedUnique(b.autoscalers);
    add(
      `scale.${pool}`,
      ['principal is Port::Autoscaler', 'action == Port::Action::"scale"', `resource == ${entityLiteral('Pool', pool)}`],
      [{ any: autoscalers.map((a) => `principal == ${entityLiteral('Autoscaler', a)}`) }],
      `autoscaler ${list(autoscalers)} may scale ${pool}`,
    );
  }
  return out;
}

/** One `when` per kind of subject: every kind must match, any one within it. */
function jobClauses(b: GrantBindingConfig, org: string): Clause[] {
  const clauses: Clause[] = [];
  if (b.pipelines.length > 0) clauses.push({ any: b.pipelines.map((p) => pipelineCondition(p, org)) });
  if (b.pools.length > 0) clauses.push({ any: sortedUnique(b.pools).map(poolCondition) });
  if (b.groups.length > 0) {
    // Only an active person's builds: a deactivated account keeps its groups in the directory.
    clauses.push({ all: ['principal has creator', 'principal.creator.active'], any: sortedUnique(b.groups).map((g) => `principal.creator in ${entityLiteral('Group', g)}`) });
  }
  return clauses;
}

/**
 * The pipeline, and its branch or tag patterns. A tag build's `branch` is the tag's name
 * (Buildkite sets BUILDKITE_BRANCH to the tag), so branch patterns match only builds without
 * a tag: a pushed tag named `main` must not pass for the reviewed branch.
 */
function pipelineCondition(p: GrantBindingConfig['pipelines'][number], org: string): string {
  const inPipeline = `principal in ${entityLiteral('Pipeline', pipelineId(p.pipeline, org))}`;
  const branches = sortedUnique(p.branches);
  const tags = sortedUnique(p.tags);
  const refs: string[] = [];
  if (branches.length > 0) refs.push(allOf(['principal.tag == ""', anyOf(branches.map((x) => matches('principal.branch', x)))]));
  if (tags.length > 0) refs.push(allOf(['principal.tag != ""', anyOf(tags.map((x) => matches('principal.tag', x)))]));
  if (refs.length === 0) return inPipeline;
  return allOf([inPipeline, anyOf(refs)]);
}

/** `cluster/queue`: the job's Pool. `cluster/*`: Cedar can't match an entity id by pattern, so the job's `cluster_name` claim. */
function poolCondition(pool: string): string {
  if (pool.endsWith('/*')) return `principal has cluster_name && principal.cluster_name == ${stringLiteral(pool.slice(0, -2))}`;
  return `principal in ${entityLiteral('Pool', pool)}`;
}

/** A role's entries for one upstream: any entry, each its methods and its paths (empty: any). */
function requestClause(entries: GrantRole['upstreams']): Clause {
  const alternatives: string[] = [];
  for (const e of entries) {
    const parts: string[] = [];
    const methods = sortedUnique(e.methods);
    const paths = sortedUnique(e.paths);
    if (methods.length > 0) parts.push(anyOf(methods.map((m) => `context.method == ${stringLiteral(m)}`)));
    if (paths.length > 0) parts.push(anyOf(paths.map((x) => matches('context.path', x))));
    // An entry without methods or paths allows every request: nothing to add.
    if (parts.length === 0) return { any: [] };
    alternatives.push(allOf(parts));
  }
  return { any: alternatives };
}

/** `when { … }`: on one line when short, else one alternative a line. */
function renderWhen(c: Clause): string {
  const all = c.all ?? [];
  const body = all.length === 0 ? anyOf(c.any) : allOf([...all, ...(c.any.length > 0 ? [anyOf(c.any)] : [])]);
  if (body.length <= 96 || c.any.length < 2) return `when { ${body} }`;
  const alternatives = c.any.map((a) => (/ (&&|\|\|) /.test(a) ? `(${a})` : a));
  if (all.length === 0) return `when {\n  ${alternatives.join(' ||\n  ')}\n}`;
  return `when {\n  ${all.join(' && ')} && (\n    ${alternatives.join(' ||\n    ')}\n  )\n}`;
}

function jobsPhrase(b: GrantBindingConfig, org: string): string {
  const parts: string[] = [];
  if (b.pipelines.length > 0) {
    parts.push(
      `of ${list(
        b.pipelines.map((p) => {
          const refs = [...sortedUnique(p.branches).map(shownValue), ...sortedUnique(p.tags).map((t) => `tag ${shownValue(t)}`)];
          return `${pipelineId(p.pipeline, org)}${refs.length > 0 ? ` (${refs.join(', ')})` : ''}`;
        }),
      )}`,
    );
  }
  if (b.pools.length > 0) parts.push(`in ${list(sortedUnique(b.pools))}`);
  if (b.groups.length > 0) parts.push(`started by a member of ${list(sortedUnique(b.groups).map(shownValue))}`);
  return `jobs ${parts.join(' ')}`;
}

function requestPhrase(entries: GrantRole['upstreams']): string {
  if (entries.some((e) => e.methods.length === 0 && e.paths.length === 0)) return '';
  const each = entries.map((e) => [e.methods.length > 0 ? e.methods.join('/') : 'any method', e.paths.length > 0 ? `on ${e.paths.map(shownValue).join(', ')}` : ''].filter(Boolean).join(' '));
  return ` (${each.join('; ')})`;
}

function list(items: readonly string[]): string {
  return items.length <= 1 ? (items[0] ?? '') : `${items.slice(0, -1).join(', ')} or ${items.at(-1)}`;
}

/** A role's source: a header naming the role, then each binding's header and policies. */
function roleSource(role: GrantRole, bindings: { binding: GrantBindingConfig; policies: CompiledGrantPolicy[] }[], config: PortConfig): PolicyFile {
  const name = grantSourceName(role.name);
  const lines = [`// ${name}: role ${role.name}, defined in ${shownSource(role.source, config)} (${roleKey(role)})`];
  if (role.description !== undefined) lines.push(`// ${commentText(role.description.trim())}`);
  for (const { binding, policies } of bindings) {
    lines.push('', `// binding ${shownSource(binding.source, config)} ${bindingKey(binding)}: ${commentText(subjectsPhrase(binding, config.buildkite.organization))}`);
    for (const p of policies) lines.push('', p.text);
  }
  return { name, path: name, text: `${lines.join('\n')}\n` };
}

function subjectsPhrase(b: GrantBindingConfig, org: string): string {
  const parts: string[] = [];
  if (b.pipelines.length > 0) {
    const each = b.pipelines.map((p) => {
      const refs = [p.branches.length > 0 ? `branches ${p.branches.map(shownValue).join(', ')}` : '', p.tags.length > 0 ? `tags ${p.tags.map(shownValue).join(', ')}` : ''].filter(Boolean);
      return `${pipelineId(p.pipeline, org)}${refs.length > 0 ? ` (${refs.join('; ')})` : ''}`;
    });
    parts.push(`pipelines ${each.join(', ')}`);
  }
  if (b.pools.length > 0) parts.push(`pools ${b.pools.join(', ')}`);
  if (b.groups.length > 0) parts.push(`groups ${b.groups.map(shownValue).join(', ')}`);
  if (b.autoscalers.length > 0) parts.push(`autoscalers ${b.autoscalers.join(', ')}`);
  return parts.join('; ');
}
