import type { SecretCredentialConfig } from '../../config/config.js';
import { resolveSecretRef } from '../../config/secret-ref.js';
import { ConfigError } from '../../errors.js';
import { CredentialError } from './errors.js';
import { describeFailure, dropTrailingNewline, runCommand } from './run-command.js';

/**
 * The configured value of a secret credential (`value: env:NAME | file:PATH | command:CMD`),
 * read on each release so a changed file or a command's fresh answer applies at once.
 * Failures name the credential and what went wrong, never the value or the command's output.
 */
export async function resolveSecretValue(cred: SecretCredentialConfig): Promise<string> {
  const ref = cred.value.ref;
  if (ref.startsWith('command:')) {
    const result = await runCommand(ref.slice('command:'.length).trim(), { timeoutSeconds: cred.commandTimeout });
    if (!result.ok) throw unavailable(cred.name, `its command ${describeFailure(result.failure)}`);
    const value = dropTrailingNewline(result.stdout);
    if (value === '') throw unavailable(cred.name, 'its command printed nothing');
    return value;
  }
  try {
    // env: and file: (trailing newline dropped) — the same rules as every secret reference.
    const value = resolveSecretRef(ref, cred.value.key, cred.value.baseDir);
    if (value === '') throw unavailable(cred.name, `${cred.value.key} is empty`);
    return value;
  } catch (err) {
    if (err instanceof ConfigError) throw unavailable(cred.name, err.message.replace(/\.$/, ''), err);
    throw err;
  }
}

function unavailable(name: string, why: string, cause?: unknown): CredentialError {
  return new CredentialError('credential_unavailable', `The secret "${name}" is not available: ${why}.`, cause === undefined ? undefined : { cause });
}
