import type { PoolConfig } from '../config/config.js';
import type { AwsIamIdentity } from './attestation/aws-iam.js';
import type { InstanceIdentity } from './attestation/aws-iid.js';

/** What the AWS proofs of one attestation showed (each present only when it verified). */
export interface VerifiedAws {
  iam?: Pick<AwsIamIdentity, 'arn' | 'account' | 'iamRole' | 'sessionName'>;
  iid?: Pick<InstanceIdentity, 'instanceId' | 'accountId' | 'region'>;
}

/** A failed rule: the decision log's `check` and the one sentence the caller gets. */
export interface RuleFailure {
  check: 'account_not_allowed' | 'region_not_allowed' | 'role_not_allowed' | 'region_unproven' | 'role_unproven' | 'accounts_disagree' | 'session_not_instance';
  message: string;
}

/**
 * The pool's `aws` rules on what verified, and the consistency of two proofs:
 * - `accounts`: every proof's account is listed;
 * - `regions`: shown only by the identity document, so a pool that lists regions needs
 *   `aws_iid` in the request (fail closed: a rule Port can't check is not a pass);
 * - `roles`: the instance role's ARN (`arn:aws:iam::ACCOUNT:role/NAME`, or the
 *   assumed-role ARN for a pattern written that way) matches a pattern, `*` any run of
 *   characters; shown only by `aws_iam`, so a pool that lists roles needs it;
 * - with both proofs, they describe one machine: the same account, and the role session
 *   named after the instance, as EC2 names an instance profile's sessions
 *   (https://docs.aws.amazon.com/IAM/latest/UserGuide/id_roles_use_switch-role-ec2.html).
 */
export function checkPoolRules(pool: PoolConfig, aws: VerifiedAws): RuleFailure | undefined {
  const { iam, iid } = aws;
  const { accounts, regions, roles } = pool.aws;
  if (accounts.length > 0) {
    for (const account of [iam?.account, iid?.accountId]) {
      if (account !== undefined && !accounts.includes(account)) {
        return { check: 'account_not_allowed', message: `The agent host is in AWS account ${account}, which pool ${pool.key} does not allow (pools.${pool.key}.aws.accounts).` };
      }
    }
  }
  if (regions.length > 0) {
    if (iid === undefined) {
      return { check: 'region_unproven', message: `Pool ${pool.key} allows only some AWS regions, which only the instance identity document shows; attest with aws_iid too.` };
    }
    if (!regions.includes(iid.region)) {
      return { check: 'region_not_allowed', message: `The agent host runs in ${iid.region}, which pool ${pool.key} does not allow (pools.${pool.key}.aws.regions).` };
    }
  }
  if (roles.length > 0) {
    if (iam === undefined) {
      return { check: 'role_unproven', message: `Pool ${pool.key} allows only some IAM roles, which only a signed sts:GetCallerIdentity shows; attest with aws_iam too.` };
    }
    if (!roles.some((pattern) => roleMatches(pattern, iam))) {
      return { check: 'role_not_allowed', message: `The agent host's instance role ${iam.iamRole} is not one pool ${pool.key} allows (pools.${pool.key}.aws.roles).` };
    }
  }
  if (iam !== undefined && iid !== undefined) {
    if (iam.account !== iid.accountId) {
      return { check: 'accounts_disagree', message: `The instance role is in AWS account ${iam.account} but the identity document names account ${iid.accountId}; both must come from the same host.` };
    }
    if (iam.sessionName !== iid.instanceId) {
      return {
        check: 'session_not_instance',
        message: `The instance role session is not named after instance ${iid.instanceId}; sign sts:GetCallerIdentity with the instance profile's own credentials (from the instance metadata service).`,
      };
    }
  }
  return undefined;
}

/** `*` is any run of characters; everything else is literal. A `:assumed-role/` pattern is matched against the session ARN. */
export function roleMatches(pattern: string, iam: Pick<AwsIamIdentity, 'arn' | 'iamRole'>): boolean {
  const subject = pattern.includes(':assumed-role/') ? iam.arn : iam.iamRole;
  const re = new RegExp(`^${pattern.split('*').map(escapeRegExp).join('.*')}$`);
  return re.test(subject);
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
