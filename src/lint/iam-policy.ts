/**
 * Reading IAM policy JSON (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_grammar.html)
 * as lint needs it: the trust policy in a file, its statements, principals, actions and
 * conditions. Tolerant of the shapes IAM accepts (a string or a list where either may
 * stand; one statement object or a list) and of anything else: what isn't understood is
 * treated as absent, so a check that needs it reports it missing.
 */

export type Json = Record<string, unknown>;

/** The trust policy a file holds: the document alone, or `aws iam get-role` output, which names its role. */
export interface Shape {
  document: Json;
  /** JSON pointer (RFC 6901) of the document in the file. */
  pointer: string;
  roleArn?: string;
}

export function documentOf(parsed: unknown): Shape | undefined {
  if (!isObject(parsed)) return undefined;
  if ('Statement' in parsed) return { document: parsed, pointer: '' };
  const role = parsed.Role;
  if (!isObject(role) || typeof role.Arn !== 'string') return undefined;
  let document: unknown = role.AssumeRolePolicyDocument;
  // The API returns the document URL-encoded; the AWS CLI decodes it.
  if (typeof document === 'string') {
    try {
      document = JSON.parse(decodeURIComponent(document));
    } catch {
      return undefined;
    }
  }
  if (!isObject(document)) return undefined;
  return { document, pointer: '/Role/AssumeRolePolicyDocument', roleArn: role.Arn };
}

/** The statements with their index (undefined: `Statement` is one object, not a list). */
export function statementsOf(document: Json): { statement: Json; index?: number }[] | undefined {
  const s = document.Statement;
  if (Array.isArray(s)) return s.flatMap((statement, index) => (isObject(statement) ? [{ statement, index }] : []));
  return isObject(s) ? [{ statement: s }] : undefined;
}

export function federatedOf(statement: Json): string[] {
  const principal = statement.Principal;
  if (principal === '*') return ['*'];
  return isObject(principal) ? stringsOf(principal.Federated) : [];
}

/**
 * One principal a statement names, with the JSON pointer suffix of where it is written
 * (`/Principal`, `/Principal/AWS`, `/Principal/AWS/1`). IAM's grammar
 * (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_grammar.html,
 * https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_principal.html):
 * `"Principal": "*"` (everyone) or a map from a type (`AWS`, `Federated`, `Service`,
 * `CanonicalUser`) to one id string or a list of them.
 */
export interface PrincipalEntry {
  /** `AWS`, `Federated`, `Service`, … as written; undefined for the bare string form. */
  type?: string;
  value: string;
  pointer: string;
}

export function principalsOf(statement: Json, element: 'Principal' | 'NotPrincipal' = 'Principal'): PrincipalEntry[] {
  const principal = statement[element];
  if (typeof principal === 'string') return [{ value: principal, pointer: `/${element}` }];
  if (!isObject(principal)) return [];
  return Object.entries(principal).flatMap(([type, v]): PrincipalEntry[] => {
    const at = `/${element}/${escapePointer(type)}`;
    if (typeof v === 'string') return [{ type, value: v, pointer: at }];
    if (!Array.isArray(v)) return [];
    return v.flatMap((value, i) => (typeof value === 'string' ? [{ type, value, pointer: `${at}/${i}` }] : []));
  });
}

/**
 * Whether a statement allows any of `actions`: through `Action`, or through `NotAction`,
 * which allows everything it doesn't list
 * (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_notaction.html).
 * A statement with neither, or with values lint can't read, is taken to allow them: lint
 * reports what it can't rule out.
 */
export function allowsAnyAction(statement: Json, actions: readonly string[]): boolean {
  if ('Action' in statement) {
    const patterns = stringsOf(statement.Action);
    return patterns.length === 0 || actions.some((a) => patterns.some((p) => actionMatches(p, a)));
  }
  if ('NotAction' in statement) {
    const excluded = stringsOf(statement.NotAction);
    return actions.some((a) => !excluded.some((p) => actionMatches(p, a)));
  }
  return true;
}

export interface ConditionEntry {
  /** The operator as written (`ForAnyValue:StringLike`). */
  operatorKey: string;
  /** Lower-case, without set qualifier or IfExists (`stringlike`). */
  operator: string;
  values: string[];
}

export function conditionEntries(statement: Json, key: string): ConditionEntry[] {
  const condition = statement.Condition;
  if (!isObject(condition)) return [];
  const out: ConditionEntry[] = [];
  for (const [operatorKey, block] of Object.entries(condition)) {
    if (!isObject(block)) continue;
    const operator = operatorKey
      .toLowerCase()
      .replace(/^for(any|all)value:/, '')
      .replace(/ifexists$/, '');
    for (const [k, v] of Object.entries(block)) {
      if (k.toLowerCase() === key.toLowerCase()) out.push({ operatorKey, operator, values: stringsOf(v) });
    }
  }
  return out;
}

export function conditionValues(statement: Json, key: string, operators: readonly string[]): string[] {
  return conditionEntries(statement, key)
    .filter((e) => operators.includes(e.operator))
    .flatMap((e) => e.values);
}

/** IAM action names are case-insensitive and may hold `*` and `?` (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_action.html). */
export function actionMatches(pattern: string, action: string): boolean {
  const re = new RegExp(`^${pattern.split('').map((ch) => (ch === '*' ? '.*' : ch === '?' ? '.' : escapeRegExp(ch))).join('')}$`, 'i');
  return re.test(action);
}

export function stringsOf(value: unknown): string[] {
  if (typeof value === 'string') return [value];
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];
}

export function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** RFC 6901 §3: `~` → `~0`, `/` → `~1`. */
export function escapePointer(token: string): string {
  return token.replace(/~/g, '~0').replace(/\//g, '~1');
}
