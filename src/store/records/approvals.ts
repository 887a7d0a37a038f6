/** A build's creator as a Port user (User ids are lower-cased e-mails). */
export interface CreatorInfo {
  /** E-mail; lower-cased here because User ids are lower-cased e-mails. */
  email: string;
  active: boolean;
  groups: string[];
}

/** The facts of a build an approval request is about. */
export interface BuildFacts {
  organization: string;
  pipeline: string;
  number: number;
  branch: string;
  tag: string | null;
  commit: string;
  source: string;
  /** The build's creator as a Port user, when Buildkite names one and Port knows them. */
  creator?: CreatorInfo;
}

/** The block step a request is about. */
export interface BlockStepFacts {
  /** The step key, else the job id (the `BlockStep` entity id). */
  step: string;
  /** Field values by key, as `unblock` will submit them. */
  fields: Record<string, string>;
}

/** A person Port knows (from SSO sign-in and SCIM provisioning); User ids are lower-cased e-mails. */
export interface UserRecord {
  email: string;
  name?: string;
  active: boolean;
  groups: string[];
  updatedAt: number;
  /**
   * Who is authoritative for `active` and `groups`. `scim` once SCIM provisioned the
   * person (src/scim): a sign-in then changes neither (src/web/sso.ts). Absent or `sso`:
   * each sign-in sets them from the ID token.
   */
  source?: 'sso' | 'scim';
}

/** What an approval request needs before Port unblocks (from the policies that asked for it). */
export interface ApprovalRequirement {
  /** Eligible approvals needed in all. */
  approvals: number;
  /** One approval from a member of each of these groups (and `approvals` in all). */
  groups: string[];
  /** The unblock policies that made Port ask, and why. */
  policies: { id: string; reason?: string }[];
  reason: string;
  /**
   * Set when Buildkite names no creator for the build (`approvals.no_creator`): the rule
   * applied (`extra_approval` added one to `approvals`) and why, for people and the log.
   */
  noCreator?: { rule: 'extra_approval' | 'allow'; reason: string };
}

export interface ApprovalEntry {
  email: string;
  groups: string[];
  decision: 'approve' | 'reject';
  comment: string;
  at: number;
  /** The approve policies that made this person eligible. */
  policies: string[];
}

/** `revoked`: closed by a revocation of its build, job or creator (src/revocation). */
export type ApprovalStatus = 'pending' | 'rejected' | 'expired' | 'unblocked' | 'unblock_failed' | 'revoked';

export interface ApprovalRequestRecord {
  id: string;
  /** The block step's job id: one request per blocked job. */
  jobId: string;
  buildId: string;
  build: BuildFacts;
  step: BlockStepFacts & { label: string; key: string | null };
  /** E-mails that never count as approvers unless policy says so (creator, commit author). */
  authors: string[];
  requirement: ApprovalRequirement;
  status: ApprovalStatus;
  createdAt: number;
  expiresAt: number;
  closedAt?: number;
  approvals: ApprovalEntry[];
}

/** A signed-in person's session (src/web). Stored under the SHA-256 of its cookie value. */
export interface SessionRecord {
  /** SHA-256 (hex) of the session cookie's value; the value itself is never stored. */
  idHash: string;
  email: string;
  name?: string;
  groups: string[];
  /** Synchronizer token every state-changing form must carry. */
  csrfToken: string;
  createdAt: number;
  expiresAt: number;
}
