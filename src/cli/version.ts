import { readFileSync } from 'node:fs';

/**
 * The version in the package's own package.json, read at run time so `port --version`
 * can't drift from what was installed. This module is src/cli/version.ts (tests) or
 * dist/cli/version.js (the bin): either way package.json is two folders up.
 */
export function packageVersion(): string {
  try {
    const pkg: unknown = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'));
    const version = typeof pkg === 'object' && pkg !== null ? (pkg as { version?: unknown }).version : undefined;
    return typeof version === 'string' && version !== '' ? version : 'unknown';
  } catch {
    return 'unknown';
  }
}
