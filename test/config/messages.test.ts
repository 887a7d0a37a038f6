import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.js';

// Every configuration error is one sentence per problem: FILE: key: found …; expected …
const dir = mkdtempSync(join(tmpdir(), 'port-config-messages-'));
mkdirSync(join(dir, 'policies'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const minimal = 'server:\n  public_url: https://port.example\nbuildkite:\n  organization: acme\n';

function messageFor(yaml: string): string {
  const file = join(dir, 'port.yaml');
  writeFileSync(file, yaml);
  try {
    loadConfig(file);
  } catch (err) {
    return (err as Error).message.replaceAll(`${file}: `, 'port.yaml: ');
  }
  throw new Error('expected the config to be refused');
}

const cases: [string, string, string][] = [
  ['a number where a string is expected', 'server:\n  listen: 8080\n  public_url: https://port.example\nbuildkite:\n  organization: acme\n', 'port.yaml: server.listen: found the number 8080; expected a string HOST:PORT, e.g. 127.0.0.1:8080.'],
  ['a string where a number is expected', `${minimal}  max_token_bytes: lots\n`, 'port.yaml: buildkite.max_token_bytes: found "lots"; expected a whole number from 512 to 65536.'],
  ['a number out of range', `${minimal}  max_token_bytes: 100\n`, 'port.yaml: buildkite.max_token_bytes: found the number 100; expected a whole number from 512 to 65536.'],
  ['an unknown key close to a known one', `${minimal}  audiance: x\n`, 'port.yaml: buildkite.audiance: unknown key; did you mean "audience"?'],
  ['an unknown section', `${minimal}polices: ./p\n`, 'port.yaml: polices: unknown key; did you mean "policies"?'],
  [
    'an unknown key with no near match',
    `${minimal}  colour: blue\n`,
    'port.yaml: buildkite.colour: unknown key; expected one of organization, organization_id, issuer, jwks_url, audience, algorithms, clock_skew, max_token_bytes, jwks_refresh_interval, jwks_min_refresh_interval, jwks_max_age, jwks_fetch_timeout, jwks_request_wait, api_url, api_token, webhook_secret or webhook_token (see docs/reference/configuration.md).',
  ],
  ['a missing required key', 'server:\n  listen: 127.0.0.1:8080\nbuildkite:\n  organization: acme\n', 'port.yaml: server.public_url: missing; expected an http:// or https:// URL, e.g. https://port.example.com.'],
  ['an empty section', 'server:\nbuildkite:\n  organization: acme\n', 'port.yaml: server: found an empty value; expected a map with the keys listen, public_url, body_limit, log_level, admin_token, refusal_rate_limit and workers.'],
  ['a duration that is not one', `${minimal}  clock_skew: soon\n`, 'port.yaml: buildkite.clock_skew: found "soon"; expected a duration such as 90s, 15m, 12h or 30d (or a whole number of seconds), e.g. 30s.'],
  ['a duration over its maximum', `${minimal}  clock_skew: 5m\n`, 'port.yaml: buildkite.clock_skew: found 5m, longer than the allowed maximum; expected at most 1m.'],
  ['a duration under its minimum', `${minimal}  jwks_fetch_timeout: 0s\n`, 'port.yaml: buildkite.jwks_fetch_timeout: found 0s, shorter than the allowed minimum; expected at least 1s.'],
  ['a map where a duration is expected', `${minimal}  clock_skew: {seconds: 5}\n`, 'port.yaml: buildkite.clock_skew: found a map; expected a duration of at most 1m such as 90s, 15m, 12h or 30d (or a whole number of seconds), e.g. 30s.'],
  ['a size that is not one', `${minimal}upstreams:\n  npm:\n    url: https://r.example\n    max_body: 2TB\n`, 'port.yaml: upstreams.npm.max_body: found "2TB"; expected a size such as 512KiB, 64MiB or 1GiB (or a whole number of bytes), e.g. 1GiB.'],
  ['an enum value', `${minimal}  algorithms: [HS256]\n`, 'port.yaml: buildkite.algorithms[0]: found "HS256"; expected one of RS256, RS384, RS512, PS256, ES256, ES384 or EdDSA.'],
  ['an enum on a section key', 'server:\n  public_url: https://port.example\n  log_level: verbose\nbuildkite:\n  organization: acme\n', 'port.yaml: server.log_level: found "verbose"; expected one of fatal, error, warn, info, debug, trace or silent.'],
  ['an empty list', `${minimal}  algorithms: []\n`, 'port.yaml: buildkite.algorithms: found an empty list; expected at least 1 item.'],
  ['a string where a list is expected', `${minimal}  algorithms: RS256\n`, 'port.yaml: buildkite.algorithms: found "RS256"; expected a list of at least 1 item, each one of RS256, RS384, RS512, PS256, ES256, ES384 or EdDSA.'],
  ['a UUID', `${minimal}  organization_id: nope\n`, 'port.yaml: buildkite.organization_id: found "nope"; expected a UUID, e.g. 0b7d6c2b-8f1e-4a56-9d3c-2f6e1a4b5c7d.'],
  ['a URL with another scheme', `${minimal}  api_url: ftp://api.example\n`, 'port.yaml: buildkite.api_url: found "ftp://api.example"; expected an http:// or https:// URL.'],
  ['a boolean', `${minimal}relay:\n  accept_buildkite_tokens: "yes"\n`, 'port.yaml: relay.accept_buildkite_tokens: found "yes"; expected true or false.'],
  ['a list where a map is expected', `${minimal}upstreams:\n  - name: npm\n    url: https://r.example\n`, 'port.yaml: upstreams: found a list; expected a map of upstream name: settings, e.g. {npm: {url: https://registry.npmjs.org, inject: {bearer: env:NPM_TOKEN}}}.'],
  ['a map where a list is expected', `${minimal}audit:\n  checkpoint_sinks:\n    file: /x\n`, 'port.yaml: audit.checkpoint_sinks: found a map; expected a list, e.g. [{file: /var/log/port/checkpoints.jsonl}].'],
  ['a map name that is not allowed', `${minimal}credentials:\n  Deploy:\n    type: secret\n    value: env:X\n`, 'port.yaml: credentials.Deploy: found the name "Deploy"; expected a name of lower-case letters, digits, - and _ (starting with a letter or digit), e.g. npm.'],
  ['an unknown credential type', `${minimal}credentials:\n  deploy:\n    type: aws\n`, 'port.yaml: credentials.deploy.type: found "aws"; expected one of port_token, secret or aws_role, e.g. type: secret.'],
  ['a credential without a type', `${minimal}credentials:\n  deploy:\n    value: env:X\n`, 'port.yaml: credentials.deploy.type: missing; expected one of port_token, secret or aws_role, e.g. type: secret.'],
  ['a key missing in a credential', `${minimal}credentials:\n  deploy:\n    type: port_token\n`, 'port.yaml: credentials.deploy.audience: missing; expected a non-empty string, e.g. https://deploy.example.com.'],
  ['a refinement', `${minimal}credentials:\n  deploy:\n    type: secret\n    value: command:x\n    command_env: [PORT_CREDENTIAL]\n`, "port.yaml: credentials.deploy.command_env: found PORT_CREDENTIAL in the list; expected it left out, because Port sets PORT_CREDENTIAL to the credential's name itself."],
  ['an inject kind that does not exist', `${minimal}upstreams:\n  npm:\n    url: https://r.example\n    inject:\n      token: env:X\n`, 'port.yaml: upstreams.npm.inject: found a map with "token"; expected exactly one of the keys bearer, basic, header or aws_sigv4, e.g. {bearer: env:NPM_TOKEN}.'],
  ['two inject kinds', `${minimal}upstreams:\n  npm:\n    url: https://r.example\n    inject:\n      bearer: env:X\n      basic: {username: a, password: env:Y}\n`, 'port.yaml: upstreams.npm.inject: found a map with "bearer" and "basic"; expected exactly one of the keys bearer, basic, header or aws_sigv4, e.g. {bearer: env:NPM_TOKEN}.'],
  ['a string where an inject map is expected', `${minimal}upstreams:\n  npm:\n    url: https://r.example\n    inject: env:X\n`, 'port.yaml: upstreams.npm.inject: found "env:X"; expected a map with exactly one of the keys bearer, basic, header or aws_sigv4, e.g. {bearer: env:NPM_TOKEN}.'],
  ['a problem inside one inject kind', `${minimal}upstreams:\n  npm:\n    url: https://r.example\n    inject:\n      basic: {username: a}\n`, 'port.yaml: upstreams.npm.inject.basic.password: missing; expected a secret reference env:NAME or file:PATH (never the secret itself), e.g. env:ARTIFACTORY_PASSWORD.'],
  ['a rotation hook of no known form', `${minimal}credentials:\n  db:\n    type: secret\n    value: command:x\n    rotation:\n      hook: {cmd: x}\n`, 'port.yaml: credentials.db.rotation.hook: found a map with "cmd"; expected exactly one of the keys command or url, e.g. {command: /usr/local/bin/rotate-db-password}.'],
  ['a checkpoint sink of no known form', `${minimal}audit:\n  checkpoint_sinks:\n    - path: /x\n`, 'port.yaml: audit.checkpoint_sinks[0]: found a map with "path"; expected exactly one of the keys file or url.'],
  ['a header name', `${minimal}audit:\n  checkpoint_sinks:\n    - url: https://anchor.example\n      headers: {"bad header": env:X}\n`, 'port.yaml: audit.checkpoint_sinks[0].headers.bad header: found the name "bad header"; expected an HTTP header name (an RFC 9110 §5.6.2 token), e.g. Authorization.'],
  ['a list of the whole file', '- server\n- buildkite\n', 'port.yaml: found a list; expected a map with the keys server, store, buildkite, policies, issuer, audit, sso, scim, ….'],
];

describe('configuration error messages', () => {
  it.each(cases)('%s', (_name, yaml, message) => {
    expect(messageFor(yaml)).toBe(message);
  });

  it('never repeats a value written where a secret reference belongs', () => {
    const m = messageFor(`${minimal}  api_token: hunter2-very-secret\n`);
    expect(m).toBe(
      'port.yaml: buildkite.api_token: found a value that is not a reference (not repeated here in case it is the secret itself); expected a secret reference env:NAME or file:PATH (never the secret itself), e.g. env:BUILDKITE_API_TOKEN.',
    );
    expect(messageFor(`${minimal}credentials:\n  npm:\n    type: secret\n    value: npm_abcdef123456\n`)).not.toContain('npm_abcdef');
    expect(messageFor(`${minimal}upstreams:\n  npm:\n    url: https://r.example\n    inject:\n      bearer: 123456\n`)).toBe(
      'port.yaml: upstreams.npm.inject.bearer: found a number; expected a secret reference env:NAME or file:PATH (never the secret itself), e.g. env:NPM_TOKEN.',
    );
  });

  it('lists every problem, one sentence on each line', () => {
    const lines = messageFor('').split('\n');
    expect(lines).toEqual([
      'port.yaml: server: missing; expected a map with the keys listen, public_url, body_limit, log_level, admin_token, refusal_rate_limit and workers.',
      'port.yaml: buildkite: missing; expected a map with the keys organization, organization_id, issuer, jwks_url, audience, algorithms, clock_skew, max_token_bytes, ….',
    ]);
    for (const line of lines) expect(line).toMatch(/^port\.yaml: [^\n]*[.?]$/);
  });

  it('no message leaks zod wording', () => {
    for (const [, yaml] of cases) expect(messageFor(yaml)).not.toMatch(/Invalid input|received|Invalid option|README/);
  });
});
