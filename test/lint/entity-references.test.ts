import { describe, expect, it } from 'vitest';
import { policyReferences } from '../../src/policy/entity-references.js';

describe('policy references lint relies on', () => {
  it('collects Pool, Autoscaler and Group literals from scopes and conditions, each located, and the @reason', () => {
    const text = `@id("scale-deploy")
@reason("the elastic stack may grow the deploy pool")
permit (principal == Port::Autoscaler::"elastic", action == Port::Action::"scale", resource == Port::Pool::"linux/deploy");

@id("contractors")
forbid (principal is Port::Job in Port::Pool::"linux/untrusted", action, resource)
when { principal has creator && principal.creator in [Port::Group::"contractors", Port::Group::"interns"] };
`;
    const [scale, contractors] = policyReferences('p.cedar', text);
    expect(scale).toMatchObject({ id: 'scale-deploy', reason: 'the elastic stack may grow the deploy pool', effect: 'permit', line: 1, column: 1 });
    const line3 = text.split('\n')[2]!;
    expect(scale!.references).toEqual([
      { type: 'Autoscaler', id: 'elastic', line: 3, column: line3.indexOf('Port::Autoscaler') + 1 },
      { type: 'Pool', id: 'linux/deploy', line: 3, column: line3.indexOf('Port::Pool') + 1 },
    ]);
    expect(contractors!.reason).toBeUndefined();
    expect(contractors!.references.map((r) => `${r.type}:${r.id}@${r.line}`)).toEqual(['Pool:linux/untrusted@6', 'Group:contractors@7', 'Group:interns@7']);
  });
});
