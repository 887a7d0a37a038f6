import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig, secretReferences } from '../../src/config/config.js';
import { ConfigError } from '../../src/errors.js';

// Read-only commands (audit, policy) load the config without reading any secret.
const dir = mkdtempSync(join(tmpdir(), 'port-config-readonly-'));
mkdirSync(join(dir, 'policies'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

for (const name of Object.keys(process.env)) if (name.startsWith('PORT_RO_')) delete process.env[name];

const everySecret = `server:
  public_url: https://port.example
  admin_token: env:PORT_RO_ADMIN
store:
  postgres: env:PORT_RO_DATABASE_URL
buildkite:
  organization: acme
  api_token: env:PORT_RO_API
  webhook_secret: file:./missing-webhook-secret
issuer:
  introspection_token: env:PORT_RO_INTROSPECT
  key_encryption_key: env:PORT_RO_KEK
audit:
  checkpoint_sinks:
    - url: https://anchor.example
      headers:
        Authorization: env:PORT_RO_ANCHOR
sso:
  issuer: https://idp.example
  client_id: port
  client_secret: env:PORT_RO_SSO
scim:
  token: env:PORT_RO_SCIM
approvals:
  notify:
    slack_webhook: env:PORT_RO_SLACK
credentials:
  npm:
    type: secret
    value: env:PORT_RO_NPM
  vault:
    type: secret
    value: command:vault kv get -field=token secret/x
    rotation:
      hook:
        url: https://rotator.example/hook
        signing_secret: env:PORT_RO_ROTATE
  aws:
    type: aws_role
    mode: assume_role
    role_arn: arn:aws:iam::123456789012:role/deploy
    access_key_id: env:PORT_RO_AWS_ID
    secret_access_key: env:PORT_RO_AWS_SECRET
upstreams:
  registry:
    url: https://registry.example
    inject:
      bearer: env:PORT_RO_REGISTRY
  artifacts:
    url: https://artifacts.example
    inject:
      basic: { username: port, password: file:./missing-password }
  api:
    url: https://api.example
    inject:
      header: { name: X-Api-Key, value: env:PORT_RO_HEADER }
`;

function write(yaml: string): string {
  const file = join(dir, `port-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(file, yaml);
  return file;
}

describe('loadConfig(file, { resolveSecrets: false })', () => {
  it('loads a config whose secrets are all missing, and a full load refuses it', () => {
    const file = write(everySecret);
    expect(() => loadConfig(file)).toThrow(ConfigError);
    expect(() => loadConfig(file)).toThrow(`${file}: server.admin_token: environment variable PORT_RO_ADMIN is not set`);
    const config = loadConfig(file, { resolveSecrets: false });
    expect(config.buildkite.organization).toBe('acme');
    expect(config.store.postgres).toEqual({ ref: 'env:PORT_RO_DATABASE_URL', key: 'store.postgres', baseDir: dir });
    expect(Object.keys(config.upstreams)).toEqual(['registry', 'artifacts', 'api']);
  });

  it('still validates everything else, including the syntax of references', () => {
    expect(() => loadConfig(write(`${everySecret.replace('env:PORT_RO_NPM', 'npm_inline_secret')}`), { resolveSecrets: false })).toThrow(
      /credentials\.npm\.value: found a value that is not a reference/,
    );
    expect(() => loadConfig(write(everySecret.replace('organization: acme', 'organization: Acme!')), { resolveSecrets: false })).toThrow(/buildkite\.organization: found "Acme!"/);
    expect(() => loadConfig(write(everySecret.replace('policies', 'x').concat('policies: ./nowhere\n')), { resolveSecrets: false })).toThrow(/policies: folder .*nowhere does not exist/);
  });

  it('reads issuer secrets only when they are used, naming the key if one is missing', () => {
    const config = loadConfig(write(everySecret), { resolveSecrets: false });
    expect(() => config.issuer.keyEncryptionKey).toThrow(/issuer\.key_encryption_key: environment variable PORT_RO_KEK is not set/);
    process.env.PORT_RO_KEK = 'k'.repeat(43);
    try {
      expect(config.issuer.keyEncryptionKey).toBe('k'.repeat(43));
    } finally {
      delete process.env.PORT_RO_KEK;
    }
    expect(config.issuer.keyEncryptionKeySource).toEqual({ ref: 'env:PORT_RO_KEK', key: 'issuer.key_encryption_key', baseDir: dir });
  });

  it('a full load resolves the issuer secrets to strings', () => {
    process.env.PORT_RO_INTROSPECT = 'introspect-secret';
    try {
      const config = loadConfig(write('server:\n  public_url: https://port.example\nbuildkite:\n  organization: acme\nissuer:\n  introspection_token: env:PORT_RO_INTROSPECT\n'));
      expect(config.issuer.introspectionToken).toBe('introspect-secret');
      expect(config.issuer.keyEncryptionKey).toBeUndefined();
    } finally {
      delete process.env.PORT_RO_INTROSPECT;
    }
  });
});

describe('secretReferences(config)', () => {
  it('lists every secret reference with the key that names it, without reading any', () => {
    const refs = secretReferences(loadConfig(write(everySecret), { resolveSecrets: false }));
    expect(refs.map((r) => [r.key, r.ref, r.kind]).sort()).toEqual(
      [
        ['server.admin_token', 'env:PORT_RO_ADMIN', 'env'],
        ['store.postgres', 'env:PORT_RO_DATABASE_URL', 'env'],
        ['buildkite.api_token', 'env:PORT_RO_API', 'env'],
        ['buildkite.webhook_secret', 'file:./missing-webhook-secret', 'file'],
        ['issuer.introspection_token', 'env:PORT_RO_INTROSPECT', 'env'],
        ['issuer.key_encryption_key', 'env:PORT_RO_KEK', 'env'],
        ['audit.checkpoint_sinks[0].headers.Authorization', 'env:PORT_RO_ANCHOR', 'env'],
        ['sso.client_secret', 'env:PORT_RO_SSO', 'env'],
        ['scim.token', 'env:PORT_RO_SCIM', 'env'],
        ['approvals.notify.slack_webhook', 'env:PORT_RO_SLACK', 'env'],
        ['credentials.npm.value', 'env:PORT_RO_NPM', 'env'],
        ['credentials.vault.value', 'command:vault kv get -field=token secret/x', 'command'],
        ['credentials.vault.rotation.hook.signing_secret', 'env:PORT_RO_ROTATE', 'env'],
        ['credentials.aws.access_key_id', 'env:PORT_RO_AWS_ID', 'env'],
        ['credentials.aws.secret_access_key', 'env:PORT_RO_AWS_SECRET', 'env'],
        ['upstreams.registry.inject.bearer', 'env:PORT_RO_REGISTRY', 'env'],
        ['upstreams.artifacts.inject.basic.password', 'file:./missing-password', 'file'],
        ['upstreams.api.inject.header.value', 'env:PORT_RO_HEADER', 'env'],
      ].sort(),
    );
    for (const r of refs) expect(r.baseDir).toBe(dir);
  });
});
