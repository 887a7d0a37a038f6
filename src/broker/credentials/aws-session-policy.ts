import { readFileSync } from 'node:fs';
import { SAFE_VALUE_DESCRIPTION, unsafeCharacter } from './aws-claim-value.js';
import { CredentialError } from './errors.js';

/** The plaintext session policy limit (STS API reference, AssumeRole `Policy`: 2,048 characters). */
export const MAX_SESSION_POLICY_CHARS = 2048;
/**
 * `${claim}` with a plain claim name. IAM's own policy variables (`${aws:username}`,
 * `${aws:PrincipalTag/x}`, `${*}`…) all contain other characters and pass through untouched.
 */
const PLACEHOLDER = /\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

/**
 * Renders a session policy template: each `${claim}` is replaced by the job claim's value,
 * the result must parse as JSON and is packed (whitespace removed) to at most 2,048
 * characters. A value is refused, not escaped, unless every character is safe in an IAM
 * pattern (aws-claim-value.ts): a branch named `*` must not widen `…/${build_branch}/…` to
 * every branch's objects. A missing or empty value is refused too (`…/${build_tag}*` would become `…/*`).
 * Any failure names the placeholder and the claim, never the value.
 */
export function renderSessionPolicy(templatePath: string, claims: Record<string, unknown>, credential: string): string {
  let template: string;
  try {
    template = readFileSync(templatePath, 'utf8');
  } catch (err) {
    throw new CredentialError('credential_unavailable', `Credential ${credential}: the session policy template ${templatePath} cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'}).`);
  }
  const rendered = template.replace(PLACEHOLDER, (_, claim: string) => {
    const value = claims[claim];
    if (value === undefined || value === null || value === '' || typeof value === 'object') {
      throw new CredentialError('invalid_request', `Credential ${credential}: the session policy uses \${${claim}}, which this job's token does not carry as a single value.`);
    }
    const text = String(value);
    const bad = unsafeCharacter(text);
    if (bad !== undefined) {
      throw new CredentialError(
        'invalid_request',
        `Credential ${credential}: the session policy's \${${claim}} can't take this job's ${claim}: it holds ${bad}, and a placeholder value may hold only ${SAFE_VALUE_DESCRIPTION} (no IAM wildcard or policy variable).`,
      );
    }
    // Safe characters need no JSON escaping: the value can't leave its string.
    return text;
  });
  let packed: string;
  try {
    packed = JSON.stringify(JSON.parse(rendered));
  } catch {
    // The template itself is broken (values hold no quote or backslash): Port's configuration, not the job.
    throw new CredentialError('credential_unavailable', `Credential ${credential}: the session policy template does not render to valid JSON; fix the template.`);
  }
  if (packed.length > MAX_SESSION_POLICY_CHARS) {
    throw new CredentialError('invalid_request', `Credential ${credential}: the rendered session policy is ${packed.length} characters; AWS allows ${MAX_SESSION_POLICY_CHARS}.`);
  }
  return packed;
}
