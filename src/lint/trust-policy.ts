/**
 * IAM role trust policies checked against what Port presents to STS for an `aws_role`
 * credential in `web_identity` mode (src/broker/credentials/aws-web-identity-token.ts):
 * Port is the OIDC issuer (`server.public_url`); its token's `aud` is the credential's
 * `web_identity_audience` and its `sub` Buildkite's compound form
 * `organization:ORG:pipeline:PIPELINE:ref:REF:commit:SHA:step:STEP`.
 *
 * IAM names the issuer in two places (https://docs.aws.amazon.com/IAM/latest/UserGuide/id_roles_providers_oidc.html,
 * https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_iam-condition-keys.html#condition-keys-wif):
 * `Principal.Federated` is `arn:aws:iam::ACCOUNT:oidc-provider/HOST/PATH` and the claims
 * are the condition keys `HOST/PATH:aud` and `HOST/PATH:sub` — the issuer URL without
 * `https://`. Condition key names are case-insensitive, their values are not
 * (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition.html).
 *
 * Which credentials a file is checked against — kept simple on purpose:
 * - `aws iam get-role --role-name NAME` output (`{"Role": {"Arn", "AssumeRolePolicyDocument"}}`)
 *   names its role: it is checked against the credentials whose `role_arn` is that ARN.
 * - A bare policy document (`{"Version", "Statement"}`) names no role: it is checked against
 *   the `web_identity` credentials whose audience its `…:aud` condition allows (all of
 *   them when it allows none, so the audience finding says which were expected).
 *
 * Rules: `trust.file` (not a policy), `trust.credential` (nothing to check it against),
 * `trust.mode` (an `assume_role` credential: not checked), `trust.principal`,
 * `trust.action`, `trust.tag_session`, `trust.audience`, `trust.subject`,
 * `trust.subject_organization`, `trust.bypass` (someone besides Port may assume the role).
 */
import type { AwsRoleCredentialConfig } from '../config/config.js';
import { error, warning, type LintFinding } from './finding.js';
import {
  actionMatches,
  allowsAnyAction,
  conditionEntries,
  conditionValues,
  documentOf,
  escapePointer,
  escapeRegExp,
  federatedOf,
  principalsOf,
  statementsOf,
  stringsOf,
  type Json,
  type PrincipalEntry,
} from './iam-policy.js';

export interface TrustContext {
  /** `server.public_url`: the `iss` of Port's web identity tokens. */
  issuer: string;
  /** `buildkite.organization`: the first component of every `sub` Port issues. */
  organization: string;
  /** Every `aws_role` credential of the config. */
  credentials: readonly AwsRoleCredentialConfig[];
}

const ASSUME = 'sts:AssumeRoleWithWebIdentity';
const TAG_SESSION = 'sts:TagSession';
/** The calls that assume a role (https://docs.aws.amazon.com/STS/latest/APIReference/API_Operations.html). */
const ASSUME_ANY = ['sts:AssumeRole', ASSUME, 'sts:AssumeRoleWithSAML'];
/**
 * Buildkite's own OIDC issuer, `https://agent.buildkite.com`
 * (https://buildkite.com/docs/pipelines/security/oidc/aws): a role that trusts its IAM OIDC
 * provider takes any job's `buildkite-agent oidc request-token` directly.
 */
const BUILDKITE_PROVIDER = /(^|:oidc-provider\/|^https:\/\/)agent\.buildkite\.com(\/|$)/i;
/** Condition operators that narrow a key to the values listed (negated ones never pin a value). */
const POSITIVE_STRING_OPERATORS = ['stringequals', 'stringequalsignorecase', 'stringlike'];

/** Checks one file's text; `where` is how findings name the file. */
export function trustPolicyFindings(where: string, text: string, ctx: TrustContext): LintFinding[] {
  const out: LintFinding[] = [];
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    return [error('trust.file', where, `is not JSON (${(err instanceof Error ? err.message : String(err)).split('\n')[0]}); pass the role's trust policy document or aws iam get-role output.`)];
  }
  const shape = documentOf(parsed);
  if (shape === undefined) {
    return [
      error(
        'trust.file',
        where,
        'is neither an IAM policy document (Version, Statement) nor aws iam get-role output (Role.Arn, Role.AssumeRolePolicyDocument); pass the role\'s trust policy.',
      ),
    ];
  }
  const { document, pointer, roleArn } = shape;
  const at = (suffix: string): string => `${where}#${pointer}${suffix}`;

  const issuerHost = issuerHostPath(ctx.issuer);

  const statements = statementsOf(document);
  if (statements === undefined) return [...out, error('trust.file', at(''), 'has no Statement list; pass the role\'s trust policy document.')];

  // The credentials this file is about.
  let targets: AwsRoleCredentialConfig[];
  if (roleArn !== undefined) {
    const named = ctx.credentials.filter((c) => c.roleArn === roleArn);
    if (named.length === 0) {
      return [...out, error('trust.credential', `${where}#/Role/Arn`, `role ${roleArn} is the role_arn of no aws_role credential; check the file, or the credential's role_arn.`)];
    }
    targets = named.filter((c) => c.mode === 'web_identity');
    for (const c of named.filter((n) => n.mode !== 'web_identity')) {
      out.push(
        warning(
          'trust.mode',
          `credentials.${c.name}.mode`,
          `credential ${c.name} uses mode assume_role, so Port presents no web identity token and ${where} was not checked for it; only web_identity trust policies are checked.`,
        ),
      );
    }
    if (targets.length === 0) return out;
  } else {
    const web = ctx.credentials.filter((c) => c.mode === 'web_identity');
    if (web.length === 0) {
      return [...out, error('trust.credential', where, 'there is no aws_role credential with mode web_identity in the config to check it against; pass get-role output for an assume_role role, or remove the file.')];
    }
    const allowed = new Set(
      statements
        .filter((s) => trustsIssuer(s.statement, issuerHost))
        .flatMap((s) => conditionValues(s.statement, `${issuerHost}:aud`, ['stringequals'])),
    );
    const byAudience = web.filter((c) => allowed.has(c.webIdentityAudience));
    targets = byAudience.length > 0 ? byAudience : web;
  }

  const account = roleArn !== undefined ? roleArn.split(':')[4] : undefined;
  const portStatements = statements.filter((s) => trustsIssuer(s.statement, issuerHost, account));
  if (portStatements.length === 0) {
    const found = statements.flatMap((s) => federatedOf(s.statement));
    const expected = `arn:aws:iam::${account ?? 'ACCOUNT'}:oidc-provider/${issuerHost}`;
    out.push(
      error(
        'trust.principal',
        at('/Statement'),
        `no Allow statement trusts Port's OIDC provider ${expected} (server.public_url ${ctx.issuer})${found.length > 0 ? `; it trusts ${found.join(', ')}` : ''}; create the IAM OIDC provider for ${ctx.issuer} in the role's account and name it in Principal.Federated.`,
      ),
    );
    return out;
  }

  const statementAt = (index: number | undefined) => (suffix = ''): string => at(`/Statement${index === undefined ? '' : `/${index}`}${suffix}`);
  for (const { statement, index } of portStatements) {
    out.push(...statementFindings(statement, statementAt(index), targets, issuerHost, ctx.organization));
  }
  for (const { statement, index } of statements) {
    out.push(...bypassFindings(statement, index, statementAt(index), issuerHost));
  }
  return out;
}

/**
 * `trust.bypass`: an Allow statement that lets someone besides Port assume the role — the
 * job gets credentials Port's policies never decided and its decision log never recorded.
 * Errors: Buildkite's own provider (every job holds a token for it), `*` (everyone), and
 * `NotPrincipal` in an Allow (everyone but those listed; IAM doesn't support it in a trust
 * policy, https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_notprincipal.html).
 * Warnings: any other provider, AWS principal (account, role, user) or service — a
 * deliberate break-glass way in may be one. A statement that allows none of the assume
 * calls (say, only sts:TagSession) lets no one in and is skipped.
 */
function bypassFindings(statement: Json, index: number | undefined, here: (suffix?: string) => string, issuerHost: string): LintFinding[] {
  if (statement.Effect !== 'Allow' || !allowsAnyAction(statement, ASSUME_ANY)) return [];
  const name = `${index === undefined ? 'the statement' : `statement ${index}`}${typeof statement.Sid === 'string' && statement.Sid !== '' ? ` (Sid ${JSON.stringify(statement.Sid)})` : ''}`;
  const without = "could assume the role without Port, outside Port's policies and decision log";
  const out: LintFinding[] = [];
  if ('NotPrincipal' in statement) {
    out.push(
      error(
        'trust.bypass',
        here('/NotPrincipal'),
        `${name} is an Allow with NotPrincipal, which trusts every principal except those listed, so anyone else ${without}; IAM doesn't support NotPrincipal in a role trust policy — name Port's provider in Principal instead.`,
      ),
    );
  }
  for (const p of principalsOf(statement)) {
    if (p.type === 'Federated' && portProviderAccount(p.value, issuerHost) !== undefined) continue;
    out.push(bypassFinding(p, name, here(p.pointer), without));
  }
  return out;
}

function bypassFinding(p: PrincipalEntry, name: string, where: string, without: string): LintFinding {
  const shown = p.type === undefined ? `Principal ${JSON.stringify(p.value)}` : `${p.type} ${JSON.stringify(p.value)}`;
  if (p.value === '*') {
    return error('trust.bypass', where, `${name} also trusts ${shown}, which is everyone: any AWS identity or federated user ${without}; remove it.`);
  }
  if (p.type === 'Federated' && BUILDKITE_PROVIDER.test(p.value)) {
    return error(
      'trust.bypass',
      where,
      `${name} also trusts Buildkite's own OIDC provider (${shown}), so any job whose Buildkite token meets its conditions ${without}; remove it and let jobs get the role through Port.`,
    );
  }
  const who =
    p.type === 'Federated'
      ? `users of that identity provider`
      : p.type === 'AWS'
        ? `those IAM identities (an account, or its :root, means every role and user there allowed sts:AssumeRole)`
        : p.type === 'Service'
          ? `that AWS service`
          : `that principal`;
  return warning('trust.bypass', where, `${name} also trusts ${shown}: ${who} ${without}; remove it unless this role is a deliberate break-glass way in.`);
}

/** One Allow statement that trusts Port: its actions, audience and subject. */
function statementFindings(statement: Json, here: (suffix?: string) => string, targets: readonly AwsRoleCredentialConfig[], issuerHost: string, organization: string): LintFinding[] {
  const out: LintFinding[] = [];
  const names = targets.map((c) => c.name).join(', ');
  const actions = stringsOf(statement.Action);
  if (!actions.some((a) => actionMatches(a, ASSUME))) {
    out.push(error('trust.action', here('/Action'), `does not allow ${ASSUME}, the call Port makes for web_identity credential${targets.length === 1 ? '' : 's'} ${names}; add it to Action.`));
  }
  const tagged = targets.filter((c) => Object.keys(c.sessionTags).length > 0);
  if (tagged.length > 0 && !actions.some((a) => actionMatches(a, TAG_SESSION))) {
    out.push(
      error(
        'trust.tag_session',
        here('/Action'),
        `credential ${tagged.map((c) => c.name).join(', ')} sets session_tags, and STS refuses a web identity token carrying session tags unless the trust policy allows ${TAG_SESSION} (https://docs.aws.amazon.com/IAM/latest/UserGuide/id_session-tags.html); add it to Action.`,
      ),
    );
  }

  const audKey = `${issuerHost}:aud`;
  const audiences = conditionValues(statement, audKey, ['stringequals']);
  if (audiences.length === 0) {
    out.push(
      error(
        'trust.audience',
        here('/Condition'),
        `has no StringEquals condition on ${audKey}; add "StringEquals": {"${audKey}": "${targets[0]!.webIdentityAudience}"} so only tokens Port signs for STS are accepted.`,
      ),
    );
  }
  for (const c of audiences.length > 0 ? targets : []) {
    if (!audiences.includes(c.webIdentityAudience)) {
      out.push(
        error(
          'trust.audience',
          here('/Condition'),
          `allows ${audKey} ${audiences.map((a) => JSON.stringify(a)).join(', ')}, but credential ${c.name}'s web_identity_audience is ${JSON.stringify(c.webIdentityAudience)}, so STS refuses Port's token; make the two agree.`,
        ),
      );
    }
  }
  out.push(...subjectFindings(statement, here, names, issuerHost, organization));
  return out;
}

/**
 * The `sub` condition is what ties the role to particular jobs: without it, or with a
 * pattern that matches any pipeline (`*`, `organization:ORG:*`), every token Port signs for
 * the audience is accepted.
 * In StringLike, `*` matches any run of characters, `:` included
 * (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html#Conditions_String),
 * so a pattern that doesn't begin with the organization can match more than intended.
 */
function subjectFindings(statement: Json, here: (suffix?: string) => string, names: string, issuerHost: string, organization: string): LintFinding[] {
  const out: LintFinding[] = [];
  const subKey = `${issuerHost}:sub`;
  const subjects = conditionEntries(statement, subKey).filter((e) => POSITIVE_STRING_OPERATORS.includes(e.operator));
  const example = `organization:${organization}:pipeline:PIPELINE:ref:refs/heads/main:*`;
  if (subjects.length === 0) {
    return [
      error(
        'trust.subject',
        here('/Condition'),
        `has no StringLike or StringEquals condition on ${subKey}, so any job of any pipeline that Port gives ${names} could assume the role, and so could any other token Port signs for this audience; add "StringLike": {"${subKey}": "${example}"}.`,
      ),
    ];
  }
  for (const entry of subjects) {
    const where = here(`/Condition/${escapePointer(entry.operatorKey)}`);
    const open = entry.operator === 'stringlike' ? entry.values.find((v) => pinsNoPipeline(v, organization)) : undefined;
    if (open !== undefined) {
      out.push(
        error(
          'trust.subject',
          where,
          `${entry.operatorKey} ${subKey} allows ${JSON.stringify(open)}, which pins nothing: every sub Port signs starts organization:${organization}:, so any job of any pipeline could assume the role; name the pipelines and refs, e.g. "${example}".`,
        ),
      );
      continue;
    }
    for (const value of entry.values) {
      if (!value.startsWith(`organization:${organization}:`)) {
        out.push(
          warning(
            'trust.subject_organization',
            where,
            `${subKey} ${JSON.stringify(value)} does not start with organization:${organization}: — Port's sub is organization:ORG:pipeline:PIPELINE:ref:REF:commit:SHA:step:STEP and * also matches ":" — so it may match jobs you did not mean; start it with organization:${organization}:pipeline:.`,
          ),
        );
      }
    }
  }
  return out;
}

/**
 * Whether a StringLike `sub` pattern matches jobs of a pipeline and ref nobody named: Port
 * signs only for `buildkite.organization`, so `organization:ORG:*` (or `organization:ORG*`,
 * `organization:ORG:pipeline:*`) pins no more than `*` does. Tested by matching made-up
 * subs — a branch and a tag build, with and without a step key — as IAM would: `*` any run
 * of characters, `?` one, `${*}` `${?}` `${$}` those characters themselves
 * (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html#Conditions_String,
 * https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_variables.html#policy-vars-specialchars).
 */
function pinsNoPipeline(pattern: string, organization: string): boolean {
  const glob = new RegExp(
    `^${pattern
      .split(/(\$\{[*?$]\}|[*?])/)
      .map((part) => (part === '*' ? '.*' : part === '?' ? '.' : /^\$\{[*?$]\}$/.test(part) ? escapeRegExp(part[2]!) : escapeRegExp(part)))
      .join('')}$`,
    's',
  );
  const probe = 'port-lint-probe-7f3a';
  const subs = [`refs/heads/${probe}`, `refs/tags/${probe}`].flatMap((ref) =>
    [probe, ''].map((step) => `organization:${organization}:pipeline:${probe}:ref:${ref}:commit:${'0'.repeat(40)}:step:${step}`),
  );
  return subs.some((sub) => glob.test(sub));
}

/** `https://port.example.com/` → `port.example.com`; a path stays (`ci.example.com/port`). */
export function issuerHostPath(issuer: string): string {
  return issuer.replace(/^https?:\/\//i, '').replace(/\/+$/, '');
}

/**
 * `server.public_url` as an IAM OIDC provider URL, checked once when trust policies are:
 * IAM takes only https:// and the URL should carry no port
 * (https://docs.aws.amazon.com/IAM/latest/UserGuide/id_roles_providers_create_oidc.html).
 */
export function issuerFindings(issuer: string): LintFinding[] {
  let url: URL;
  try {
    url = new URL(issuer);
  } catch {
    return [];
  }
  if (url.protocol !== 'https:') {
    return [error('trust.issuer', 'server.public_url', `is ${issuer}, but IAM registers only https:// OIDC providers, so no role can trust Port's web identity tokens; serve Port's public URL over https.`)];
  }
  if (url.port !== '') {
    return [warning('trust.issuer', 'server.public_url', `has port ${url.port}, which an IAM OIDC provider URL should not carry; serve Port's public URL on the default https port.`)];
  }
  return [];
}

/** An Allow statement whose Principal.Federated is Port's provider (in `account`, when known) or `*`. */
function trustsIssuer(statement: Json, issuerHost: string, account?: string): boolean {
  if (statement.Effect !== 'Allow') return false;
  return federatedOf(statement).some((f) => {
    if (f === '*') return true;
    const inAccount = portProviderAccount(f, issuerHost);
    return inAccount !== undefined && (account === undefined || inAccount === account);
  });
}

/** The account of `federated` when it is Port's IAM OIDC provider (`arn:aws:iam::ACCOUNT:oidc-provider/HOST/PATH`). */
function portProviderAccount(federated: string, issuerHost: string): string | undefined {
  return new RegExp(`^arn:aws[a-z-]*:iam::(\\d{12}):oidc-provider/${escapeRegExp(issuerHost)}$`, 'i').exec(federated)?.[1];
}
