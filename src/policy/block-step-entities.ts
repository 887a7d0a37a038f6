/**
 * Cedar entities for the approvals flow (Port's schema, schema.ts): a `Build` as the
 * principal of `unblock`, its `BlockStep` as the resource of `unblock` and
 * `approve`, and a `User` (in their groups) as the principal of `approve`. As for
 * jobs, ancestors are named directly so only entities with attributes are passed.
 */
import { buildRef, groupRef, organizationRef, pipelineRef, userRef, type CreatorInfo } from './entities.js';
import type { CedarEntity, CedarValue, EntityRef } from './types.js';

/** What Port knows of a blocked build, from the Buildkite API (never from the agent). */
import type { BlockStepFacts, BuildFacts } from '../store/records/approvals.js';
export type { BlockStepFacts, BuildFacts } from '../store/records/approvals.js';

export function blockStepRef(build: BuildFacts, step: string): EntityRef {
  return { type: 'BlockStep', id: `${build.organization}/${build.pipeline}/${build.number}/${step}` };
}

function userEntity(user: CreatorInfo): CedarEntity {
  return { uid: userRef(user.email), attrs: { active: user.active }, parents: [...new Set(user.groups)].map(groupRef) };
}

/** Principal, resource and entities for `unblock` (principal = the Build). */
export function unblockRequestParts(build: BuildFacts, step: BlockStepFacts): { principal: EntityRef; resource: EntityRef; entities: CedarEntity[] } {
  const principal = buildRef(build.organization, build.pipeline, build.number);
  const ancestors = [pipelineRef(build.organization, build.pipeline), organizationRef(build.organization)];
  const attrs: Record<string, CedarValue> = {
    number: build.number,
    branch: build.branch,
    tag: build.tag ?? '',
    commit: build.commit,
    source: build.source,
  };
  const entities: CedarEntity[] = [];
  if (build.creator) {
    attrs.creator = { __entity: userRef(build.creator.email) };
    entities.push(userEntity(build.creator));
  }
  entities.push({ uid: principal, attrs, parents: ancestors });
  const resource = blockStepRef(build, step.step);
  entities.push({ uid: resource, attrs: {}, parents: [principal, ...ancestors], tags: { ...step.fields } });
  return { principal, resource, entities };
}

/** Principal and entities for `approve` by `user` on the step (the Build entity included). */
export function approveRequestParts(
  build: BuildFacts,
  step: BlockStepFacts,
  user: CreatorInfo,
): { principal: EntityRef; resource: EntityRef; entities: CedarEntity[] } {
  const parts = unblockRequestParts(build, step);
  const principal = userRef(user.email);
  const entities = parts.entities.filter((e) => !(e.uid.type === 'User' && e.uid.id === principal.id));
  entities.push(userEntity(user));
  return { principal, resource: parts.resource, entities };
}
