/**
 * Credentials and upstreams no permit can reach — dead configuration that `port config
 * check` warns about and `port policy lint` reports. By scope, as Cedar matches it
 * (https://docs.cedarpolicy.com/policies/syntax-policy.html#term-parc-resource): a permit
 * reaches a credential when its actions include `assume` (or it names no action) and its
 * resource scope names the credential (`==`, `in`); a scope open to every credential
 * (`resource`, `resource is Port::Credential`) reaches the ones its conditions name, or all
 * of them when the conditions name none. Upstreams likewise with `proxy`. An `aws_role`
 * credential that signs an upstream's requests (`inject: aws_sigv4`) is used by the relay
 * without an `assume`, so it counts as reached.
 */
import type { PolicyReferences } from './entity-references.js';

export interface ReachTargets {
  credentials: readonly string[];
  upstreams: readonly string[];
  /** Credentials the relay uses to sign upstream requests. */
  signers: ReadonlySet<string>;
}

export interface Unreachable {
  kind: 'credential' | 'upstream';
  name: string;
}

/** Every credential, then every upstream, that no permit among `refs` reaches (config order). */
export function unreachableTargets(targets: ReachTargets, refs: readonly PolicyReferences[]): Unreachable[] {
  const out: Unreachable[] = [];
  for (const name of targets.credentials) {
    if (!reached(refs, 'Credential', 'assume', name) && !targets.signers.has(name)) out.push({ kind: 'credential', name });
  }
  for (const name of targets.upstreams) {
    if (!reached(refs, 'Upstream', 'proxy', name)) out.push({ kind: 'upstream', name });
  }
  return out;
}

/** The credentials upstreams sign with (`inject: aws_sigv4`), from the config's `upstreams`. */
export function signingCredentials(upstreams: Readonly<Record<string, { inject?: { kind: string; credential?: string } }>>): Set<string> {
  return new Set(Object.values(upstreams).flatMap((u) => (u.inject?.kind === 'aws_sigv4' && u.inject.credential !== undefined ? [u.inject.credential] : [])));
}

function reached(refs: readonly PolicyReferences[], type: 'Credential' | 'Upstream', action: 'assume' | 'proxy', name: string): boolean {
  return refs.some((p) => {
    if (p.effect !== 'permit' || (p.actions !== undefined && !p.actions.includes(action))) return false;
    const r = p.resource;
    if (r.kind === 'entity') return r.type === type && r.id === name;
    if (r.kind === 'type' && r.type !== type) return false;
    const named = p.references.filter((x) => x.type === type);
    return named.length === 0 || named.some((x) => x.id === name);
  });
}
