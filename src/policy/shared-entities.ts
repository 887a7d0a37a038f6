/**
 * One request's entities, for the several decisions made on them: an exchange decides
 * `exchange` on the organization and then `assume` on each credential it asks for, all on
 * the same job. They are converted to Cedar's form once (cedar-json.ts) and projected for
 * the decision memo once per policy set (request-projection.ts), instead of per decision.
 *
 * What is converted is what the entities were when first used; Cedar and the memo's key
 * both read that one converted copy, so they can never disagree about it.
 */
import type { EntityJson } from './cedar.js';
import { cedarEntity, type CedarRequest } from './cedar-json.js';
import type { PolicyReads } from './policy-reads.js';
import { projectEntities, requestKey, type ProjectedEntities } from './request-projection.js';
import type { CedarEntity } from './types.js';

export class SharedEntities {
  private converted: EntityJson[] | undefined;
  /** The projection under `projectedFor` (undefined: not projectable under those reads). */
  private projected: ProjectedEntities | undefined;
  private projectedFor: PolicyReads | undefined;

  constructor(readonly entities: readonly CedarEntity[]) {}

  /** The entities in Cedar's form, converted on first use. */
  cedar(): EntityJson[] {
    return (this.converted ??= this.entities.map(cedarEntity));
  }

  /**
   * The memo key of `call`, a request on these entities (its `entities` are `cedar()`), under
   * `reads`: the entities' half projected once per set of reads, that is per policy set.
   */
  key(call: CedarRequest, reads: PolicyReads): string | undefined {
    if (call.entities !== this.converted) throw new Error('SharedEntities.key: the request is not on these entities');
    if (this.projectedFor !== reads) {
      this.projected = projectEntities(call.entities, reads);
      this.projectedFor = reads;
    }
    return this.projected === undefined ? undefined : requestKey(call, reads, this.projected);
  }
}
