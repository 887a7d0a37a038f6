import type { IssuedCredentialFilter } from './repositories/credentials.js';

/** Filter fields and the `issued_credentials` columns they match (fixed names: never taken from input). */
const COLUMNS: readonly (readonly [Exclude<keyof IssuedCredentialFilter, 'activeAt'>, string])[] = [
  ['jobId', 'job_id'],
  ['build', 'build'],
  ['agentId', 'agent_id'],
  ['pool', 'pool'],
  ['creator', 'creator'],
  ['tokenJtiHash', 'token_jti_hash'],
];

/**
 * The WHERE clause of an issued-credentials filter (empty when it has no field) and its
 * values, for either backend: `placeholder(n)` writes the n-th parameter (`?` or `$n`).
 */
export function issuedWhere(filter: IssuedCredentialFilter, placeholder: (n: number) => string): { sql: string; values: (string | number)[] } {
  const where: string[] = [];
  const values: (string | number)[] = [];
  for (const [field, column] of COLUMNS) {
    const value = filter[field];
    if (value === undefined) continue;
    values.push(value);
    where.push(`${column} = ${placeholder(values.length)}`);
  }
  if (filter.activeAt !== undefined) {
    values.push(filter.activeAt);
    where.push(`expires_at > ${placeholder(values.length)}`);
  }
  return { sql: where.length ? ` WHERE ${where.join(' AND ')}` : '', values };
}
