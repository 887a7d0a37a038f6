/**
 * Consistent role naming across Port and IAM (`naming:` in port.yaml):
 * - `naming.role`: every grants role name matches `naming.roles`;
 * - `naming.aws_role_name`: every `aws_role` credential a role grants has the IAM role name
 *   `naming.aws_role_name` gives for that role (`{role}` → the Port role name), so
 *   `ci-prod-deployer` in Port is `role/ci-prod-deployer` in AWS;
 * - `naming.aws_role`: every `aws_role` credential's IAM role name matches `naming.roles` too.
 *
 * An IAM role's name is the last segment of its ARN's resource: in
 * `arn:aws:iam::123456789012:role/ci/ci-prod-deployer` the path is `/ci/` and the name is
 * `ci-prod-deployer` (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_identifiers.html#identifiers-arns),
 * so the path is left out of every comparison.
 */
import type { CredentialConfig } from '../config/config.js';
import { error, type LintFinding } from './finding.js';

export interface NamingRules {
  /** `naming.roles`, compiled, and its text for messages. */
  roles?: { pattern: RegExp; source: string };
  /** `naming.aws_role_name`, with `{role}` placeholders. */
  awsRoleName?: string;
}

/** A grants role as lint sees it: where it is defined and the credentials it grants. */
export interface LintRole {
  name: string;
  /** `grants.roles.NAME`, or `FILE: roles.NAME` for a file of `grants.directory`. */
  location: string;
  credentials: readonly string[];
}

export const ROLE_PLACEHOLDER = '{role}';

export function namingFindings(rules: NamingRules, roles: readonly LintRole[], credentials: Readonly<Record<string, CredentialConfig>>): LintFinding[] {
  const out: LintFinding[] = [];
  const { roles: pattern, awsRoleName } = rules;
  if (pattern !== undefined) {
    for (const role of roles) {
      if (!pattern.pattern.test(role.name)) {
        out.push(
          error(
            'naming.role',
            role.location,
            `${JSON.stringify(role.name)} does not match naming.roles ${pattern.source}; rename the role (and the bindings that grant it) to a name that matches, or widen the pattern.`,
          ),
        );
      }
    }
  }
  if (awsRoleName !== undefined) {
    for (const role of roles) {
      for (const name of role.credentials) {
        const credential = credentials[name];
        if (credential?.type !== 'aws_role') continue;
        const expected = awsRoleName.split(ROLE_PLACEHOLDER).join(role.name);
        const actual = iamRoleName(credential.roleArn);
        if (actual === expected) continue;
        const renamed = portRoleFor(awsRoleName, actual);
        out.push(
          error(
            'naming.aws_role_name',
            `credentials.${name}.role_arn`,
            `role ${role.name} grants this credential, so naming.aws_role_name ${JSON.stringify(awsRoleName)} wants the IAM role named ${JSON.stringify(expected)}, but ${credential.roleArn} names ${JSON.stringify(actual)} (an IAM role's name is the ARN's last path segment); rename the IAM role to ${expected}${renamed !== undefined ? ` or the Port role to ${renamed}` : ''}.`,
          ),
        );
      }
    }
  }
  if (pattern !== undefined) {
    for (const credential of Object.values(credentials)) {
      if (credential.type !== 'aws_role') continue;
      const actual = iamRoleName(credential.roleArn);
      if (!pattern.pattern.test(actual)) {
        out.push(
          error(
            'naming.aws_role',
            `credentials.${credential.name}.role_arn`,
            `IAM role name ${JSON.stringify(actual)} (the last path segment of ${credential.roleArn}) does not match naming.roles ${pattern.source}; rename the IAM role so Port and AWS names follow one rule.`,
          ),
        );
      }
    }
  }
  return out;
}

/** `arn:aws:iam::123456789012:role/ci/deployer` → `deployer`. */
export function iamRoleName(roleArn: string): string {
  const resource = roleArn.slice(roleArn.indexOf(':role/') + ':role/'.length);
  return resource.slice(resource.lastIndexOf('/') + 1);
}

/** The Port role name `template` maps to `iamName`, when `{role}` appears once and the rest fits. */
function portRoleFor(template: string, iamName: string): string | undefined {
  const parts = template.split(ROLE_PLACEHOLDER);
  if (parts.length !== 2) return undefined;
  const [prefix, suffix] = parts as [string, string];
  if (iamName.length <= prefix.length + suffix.length || !iamName.startsWith(prefix) || !iamName.endsWith(suffix)) return undefined;
  return iamName.slice(prefix.length, iamName.length - suffix.length);
}
