/**
 * The policy module's public types. Entity and value shapes are Cedar's JSON formats
 * (https://docs.cedarpolicy.com/auth/entities-syntax.html), so they go to cedar-wasm as is.
 */
import type { PortAction, PortEntityType } from './schema.js';

export type { PortAction, PortEntityType } from './schema.js';

/** An entity: its type without the `Port::` namespace (the engine adds it) and its id. */
export interface EntityRef {
  type: PortEntityType;
  id: string;
}

/** A Cedar value in JSON form: entity references are `{__entity: {type, id}}`. */
export type CedarValue =
  | string
  | number
  | boolean
  | CedarValue[]
  | { __entity: EntityRef }
  | { [key: string]: CedarValue };

export interface CedarEntity {
  uid: EntityRef;
  attrs: Record<string, CedarValue>;
  parents: EntityRef[];
  tags?: Record<string, CedarValue>;
}

export interface AuthzRequest {
  principal: EntityRef;
  action: PortAction;
  resource: EntityRef;
  /** Must match the action's context type in the schema exactly (it is validated). */
  context?: Record<string, CedarValue>;
  entities: CedarEntity[];
}

export interface DeterminingPolicy {
  id: string;
  reason?: string;
  file: string;
  line: number;
}

export interface DecisionError {
  /** The policy that failed to evaluate; absent when the request itself was refused. */
  policyId?: string;
  message: string;
}

export interface Decision {
  decision: 'allow' | 'deny';
  /** Satisfied permits on allow, satisfied forbids on deny, empty on a default deny. */
  determining: DeterminingPolicy[];
  errors: DecisionError[];
  /** One sentence, e.g. `allowed by main-deploys: release from main`. */
  reason: string;
  /** The policy set revision that decided (logged, so a decision can be traced to the policies of the time). */
  revision: string;
  /**
   * On a default deny only (no permit satisfied, no forbid, no error): the permits written
   * for this action and resource that did not match, in file order — what a refused job
   * is told to look at (the reason names the first few). Absent on every other decision.
   */
  unmatched?: UnmatchedPermit[];
}

/** A permit that applied to the request's action and resource but whose conditions did not hold. */
export interface UnmatchedPermit {
  id: string;
  reason?: string;
}

/** An entity in a policy's scope, its type qualified as Cedar writes it (`Port::Credential`). */
export interface ScopeEntity {
  type: string;
  id: string;
}

/**
 * A policy's resource scope (Cedar's `resource == E`, `resource in E`, `resource is T`,
 * `resource is T in E`, or unconstrained).
 */
export type ResourceScope =
  | { op: 'all' }
  | { op: '=='; entity: ScopeEntity }
  | { op: 'in'; entity: ScopeEntity }
  | { op: 'is'; entityType: string; in?: ScopeEntity };

/** A load or validation problem, located in the original file (1-based; 0 = whole file). */
export interface PolicyProblem {
  file: string;
  line: number;
  column: number;
  policyId?: string;
  message: string;
  /** Cedar's hint, e.g. "did you mean `tag`?". */
  help?: string;
}

export interface PolicyInfo {
  id: string;
  reason?: string;
  file: string;
  line: number;
  effect: 'permit' | 'forbid';
  /** The actions the policy's scope names; absent when it applies to every action. */
  actions?: PortAction[];
  /** The policy's resource scope; absent when it could not be read (then it is treated as any resource). */
  resourceScope?: ResourceScope;
  /** The policy's source text, annotations included. */
  text: string;
  /** All its annotations (`@id`, `@reason`, and approval rules such as `@approvals_required`). */
  annotations: Readonly<Record<string, string>>;
}
