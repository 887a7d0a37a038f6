/**
 * `reach.credential`, `reach.upstream` (warnings): credentials and upstreams no permit —
 * hand-written or compiled from `grants:` — can reach (src/policy/reachability.ts, the
 * same test `port config check` applies to the policy folder alone). Dead configuration:
 * a name nobody can use, or a permit that was meant to name it and names something else.
 */
import type { PortConfig } from '../config/config.js';
import { signingCredentials, unreachableTargets } from '../policy/reachability.js';
import { warning, type LintFinding } from './finding.js';
import type { LintedPolicy } from './linted-policy.js';

export function reachFindings(config: Pick<PortConfig, 'credentials' | 'upstreams'>, policies: readonly LintedPolicy[]): LintFinding[] {
  const targets = { credentials: Object.keys(config.credentials), upstreams: Object.keys(config.upstreams), signers: signingCredentials(config.upstreams) };
  return unreachableTargets(
    targets,
    policies.map((p) => p.refs),
  ).map(({ kind, name }) =>
    kind === 'credential'
      ? warning(
          'reach.credential',
          `credentials.${name}`,
          `no permit (in the policy folder or compiled from grants:) allows action "assume" on Port::Credential::${JSON.stringify(name)}, so no job can get it; grant it from a role, add a permit, or remove it.`,
        )
      : warning(
          'reach.upstream',
          `upstreams.${name}`,
          `no permit (in the policy folder or compiled from grants:) allows action "proxy" on Port::Upstream::${JSON.stringify(name)}, so the relay refuses every request to it; grant it from a role, add a permit, or remove it.`,
        ),
  );
}
