/**
 * Port's Cedar schema (https://docs.cedarpolicy.com/schema/human-readable-schema.html). Namespace `Port`;
 * extend it, never rename: policies and the decision log name these types and actions.
 *
 * Attribute names follow Buildkite's claim names (https://buildkite.com/docs/agent/v3/cli-oidc) so a policy reads like
 * the token. Optional claims are optional attributes: strict validation then forces a
 * `has` test before use, so a policy can't match on a claim the job didn't send
 * (Cedar skips a policy whose evaluation errors: https://docs.cedarpolicy.com/auth/authorization.html).
 */
export const SCHEMA_NAMESPACE = 'Port';

export const PORT_SCHEMA = `namespace Port {
  // The Buildkite organization; id = its slug ("acme").
  entity Organization;
  // id = "org/pipeline" ("acme/deploy").
  entity Pipeline in [Organization];
  // id = "cluster_name/queue_key", from the token's optional claims. Its attributes are
  // the config's pools: entry, when there is one (absent otherwise).
  entity Pool {
    attestation?: Set<String>,
    host_bound?: Bool,
  };
  // id = the agent id (UUID). Tags = the token's agent_tag:NAME claims (set by whoever
  // runs the agent, so not proof of anything). The attributes are what Port verified and
  // only that: attested/attestation from a current attestation (POST /v1/agents/attest),
  // instance_id/account/region/iam_role from its AWS proof, connected from Buildkite's
  // REST API; a fact Port did not verify is absent, never guessed.
  entity Agent in [Pool] {
    attested?: Bool,
    attestation?: Set<String>,
    instance_id?: String,
    account?: String,
    region?: String,
    iam_role?: String,
    connected?: Bool,
  } tags String;
  // An autoscaler of the config's scaling.autoscalers; id = its name.
  entity Autoscaler;

  // An IdP group's name ("deployers").
  entity Group;
  // A person: their e-mail, lower-cased.
  entity User in [Group] {
    active: Bool,
  };

  // id = "org/pipeline/number". Like Job, it names its ancestors directly.
  entity Build in [Pipeline, Organization] {
    number: Long,
    branch: String,
    tag: String,
    commit: String,
    source: String,
    creator?: User,
  };

  // id = the job id (UUID). tag and step_key are "" when the build has no tag / the
  // step no key. A Job names all its ancestors directly (its Build, Pipeline and
  // Organization), so a request carries only the Job and its Agent: Cedar's cost is
  // ~30 µs per entity passed (BENCHMARKS.md), and ancestors without attributes need
  // no entity of their own.
  entity Job in [Build, Pipeline, Organization, Pool] {
    branch: String,
    tag: String,
    commit: String,
    step_key: String,
    build_number: Long,
    build_source: String,
    runner_environment: String,
    pipeline_slug: String,
    organization_slug: String,
    pipeline_id?: String,
    organization_id?: String,
    build_id?: String,
    cluster_id?: String,
    cluster_name?: String,
    queue_id?: String,
    queue_key?: String,
    agent: Agent,
    creator?: User,
  };

  // Names from the config's credentials: and upstreams: sections.
  entity Credential;
  entity Upstream;
  // id = "org/pipeline/build_number/step" (the step key, else the job id). Tags: the
  // block step's field values, by field key (resource.getTag("release-name")).
  entity BlockStep in [Build, Pipeline, Organization] tags String;

  // May this job hold a Port token at all?
  action exchange appliesTo {
    principal: Job,
    resource: Organization,
    context: { audience: String, scopes: Set<String> },
  };
  action assume appliesTo {
    principal: Job,
    resource: Credential,
    context: {},
  };
  // path is the normalised path Port forwards (src/relay/path). aws_target: the
  // X-Amz-Target operation (DynamoDB_20120810.GetItem), only on aws_sigv4 upstreams that
  // forward that header and only when the caller sent one (test it with has first).
  // aws_query_keys: the query's parameter names, percent-decoded and lower-cased (S3's
  // ?acl, ?list-type), on every aws_sigv4 upstream (empty without a query), never values.
  action proxy appliesTo {
    principal: Job,
    resource: Upstream,
    context: { method: String, path: String, aws_target?: String, aws_query_keys?: Set<String> },
  };
  // Decided automatically when a build reaches a block step. hour/weekday are in the
  // approvals time zone; weekday 0 = Sunday.
  action unblock appliesTo {
    principal: Build,
    resource: BlockStep,
    context: { hour: Long, weekday: Long, step_label: String, step_key: String },
  };
  action approve appliesTo {
    principal: User,
    resource: BlockStep,
    context: { is_author: Bool },
  };
  // POST /v1/pools/{cluster}/{queue}/scale: may the pool grow (or shrink) from current to
  // desired agents? Asked by an autoscaler (or a job holding a Port token).
  action scale appliesTo {
    principal: [Job, Autoscaler],
    resource: Pool,
    context: { desired: Long, current: Long },
  };
}
`;

/** The actions of the schema. */
export const PORT_ACTIONS = ['exchange', 'assume', 'proxy', 'unblock', 'approve', 'scale'] as const;
export type PortAction = (typeof PORT_ACTIONS)[number];

export const PORT_ENTITY_TYPES = [
  'Organization',
  'Pipeline',
  'Pool',
  'Agent',
  'Group',
  'User',
  'Build',
  'Job',
  'Credential',
  'Upstream',
  'BlockStep',
  'Autoscaler',
] as const;
/** An entity type of the schema, without the namespace (`Job`); see `qualifiedType`. */
export type PortEntityType = (typeof PORT_ENTITY_TYPES)[number];

export const ACTION_TYPE = `${SCHEMA_NAMESPACE}::Action`;

/** The name Cedar wants: `Job` → `Port::Job`. */
export function qualifiedType(type: PortEntityType): string {
  return `${SCHEMA_NAMESPACE}::${type}`;
}

export function isPortAction(value: string): value is PortAction {
  return (PORT_ACTIONS as readonly string[]).includes(value);
}

export function isPortEntityType(value: string): value is PortEntityType {
  return (PORT_ENTITY_TYPES as readonly string[]).includes(value);
}
