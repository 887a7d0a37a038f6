import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { ConfigError } from '../errors.js';

/**
 * A secret in the config is always a reference (`env:NAME` or `file:PATH`), never the
 * secret itself, so port.yaml can be committed, shared and printed in a support request.
 * It is resolved at start and on reload.
 */
export type SecretRef = `env:${string}` | `file:${string}`;

export const SECRET_REF_PATTERN = /^(env:[A-Za-z_][A-Za-z0-9_]*|file:.+)$/;

/** Reads the secret a reference points to; `key` names the config key for the error. */
export function resolveSecretRef(ref: string, key: string, baseDir: string): string {
  if (ref.startsWith('env:')) {
    const name = ref.slice(4);
    const value = process.env[name];
    if (value === undefined || value === '') {
      throw new ConfigError(`${key}: environment variable ${name} is not set; export it or point ${key} at another reference.`);
    }
    return value;
  }
  if (ref.startsWith('file:')) {
    const path = resolve(baseDir, ref.slice(5));
    try {
      // A trailing newline is an artefact of how secret files are written, not part of the secret.
      return readFileSync(path, 'utf8').replace(/\r?\n$/, '');
    } catch (err) {
      throw new ConfigError(`${key}: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'}); create the file or fix the path.`, { cause: err });
    }
  }
  throw new ConfigError(`${key}: "${ref.slice(0, 16)}…" is not a secret reference; write env:NAME or file:PATH.`);
}
