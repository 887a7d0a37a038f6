import { readFileSync } from 'node:fs';
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
 * JSON-escaped (so a value can't break out of its string), the result must parse as JSON
 * and is packed (whitespace removed) to at most 2,048 characters. Any failure names the problem.
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
    if (value === undefined || value === null || typeof value === 'object') {
      throw new CredentialError('invalid_request', `Credential ${credential}: the session policy uses \${${claim}}, which this job's token does not carry as a single value.`);
    }
    // JSON.stringify escapes quotes, backslashes and control characters; drop its own quotes.
    return JSON.stringify(String(value)).slice(1, -1);
  });
  let packed: string;
  try {
    packed = JSON.stringify(JSON.parse(rendered));
  } catch {
    // The template itself is broken (values are escaped): Port's configuration, not the job.
    throw new CredentialError('credential_unavailable', `Credential ${credential}: the session policy template does not render to valid JSON; fix the template.`);
  }
  if (packed.length > MAX_SESSION_POLICY_CHARS) {
    throw new CredentialError('invalid_request', `Credential ${credential}: the rendered session policy is ${packed.length} characters; AWS allows ${MAX_SESSION_POLICY_CHARS}.`);
  }
  return packed;
}
