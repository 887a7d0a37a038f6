/**
 * What Port verified about the agent a job runs on: from a current attestation
 * (`POST /v1/agents/attest`) and from Buildkite's REST API. Only verified facts are
 * present; the Cedar `Agent` entity gets exactly these (src/policy/entities.ts), and a
 * Port token carries them as its `agent_attestation` claim so the relay needs no lookup.
 */
export interface AgentFacts {
  /** A current attestation of this agent exists (false: Port looked and found none). */
  attested: boolean;
  /** What was verified: `buildkite` (live REST check), `aws_iam`, `aws_iid`. */
  attestation: string[];
  /** The EC2 instance id (`aws_iid`). */
  instanceId?: string;
  /** The AWS account of the host (`aws_iam` or `aws_iid`). */
  account?: string;
  /** The host's AWS region (`aws_iid`). */
  region?: string;
  /** The IAM role ARN of the host's instance profile (`aws_iam`), as `arn:aws:iam::ACCOUNT:role/NAME`. */
  iamRole?: string;
  /** Buildkite's REST API said the agent is connected (absent when it wasn't asked). */
  connected?: boolean;
}

/** The `agent_attestation` claim of a Port token (snake_case, as JWT claims are). */
export interface AgentFactsClaim {
  attested: boolean;
  attestation: string[];
  instance_id?: string;
  account?: string;
  region?: string;
  iam_role?: string;
  connected?: boolean;
}

export function agentFactsClaim(f: AgentFacts): AgentFactsClaim {
  return {
    attested: f.attested,
    attestation: [...f.attestation],
    ...(f.instanceId !== undefined ? { instance_id: f.instanceId } : {}),
    ...(f.account !== undefined ? { account: f.account } : {}),
    ...(f.region !== undefined ? { region: f.region } : {}),
    ...(f.iamRole !== undefined ? { iam_role: f.iamRole } : {}),
    ...(f.connected !== undefined ? { connected: f.connected } : {}),
  };
}

/** The claim read back from a verified Port token; anything malformed is no facts at all. */
export function agentFactsFromClaim(claim: unknown): AgentFacts | undefined {
  if (claim === null || typeof claim !== 'object' || Array.isArray(claim)) return undefined;
  const c = claim as Record<string, unknown>;
  if (typeof c.attested !== 'boolean' || !Array.isArray(c.attestation) || !c.attestation.every((m) => typeof m === 'string')) return undefined;
  const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);
  const facts: AgentFacts = { attested: c.attested, attestation: c.attestation as string[] };
  const instanceId = str(c.instance_id);
  const account = str(c.account);
  const region = str(c.region);
  const iamRole = str(c.iam_role);
  if (instanceId !== undefined) facts.instanceId = instanceId;
  if (account !== undefined) facts.account = account;
  if (region !== undefined) facts.region = region;
  if (iamRole !== undefined) facts.iamRole = iamRole;
  if (typeof c.connected === 'boolean') facts.connected = c.connected;
  return facts;
}
