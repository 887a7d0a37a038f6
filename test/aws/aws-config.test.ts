import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { configFromObject } from '../../src/config/config.js';

const dir = mkdtempSync(join(tmpdir(), 'port-aws-config-'));
mkdirSync(join(dir, 'policies'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function load(extra: { issuer?: Record<string, unknown>; credential: Record<string, unknown> }) {
  return configFromObject(
    {
      server: { public_url: 'https://port.acme.test' },
      buildkite: { organization: 'acme' },
      policies: './policies',
      ...(extra.issuer ? { issuer: extra.issuer } : {}),
      credentials: { 'aws-prod': { type: 'aws_role', role_arn: 'arn:aws:iam::123456789012:role/deploy', ...extra.credential } },
    },
    join(dir, 'port.yaml'),
  );
}

describe('aws_role configuration checks at load', () => {
  it('refuses issuer.algorithm EdDSA with a web_identity credential (STS accepts RS*/ES* only), naming the fix', () => {
    expect(() => load({ issuer: { algorithm: 'EdDSA' }, credential: {} })).toThrow(/credentials\.aws-prod: mode web_identity needs issuer\.algorithm: ES256/);
    // assume_role signs nothing with Port's key: EdDSA is fine there.
    expect(load({ issuer: { algorithm: 'EdDSA' }, credential: { mode: 'assume_role' } }).credentials['aws-prod']).toMatchObject({ mode: 'assume_role' });
    expect(load({ issuer: { algorithm: 'ES256' }, credential: {} }).credentials['aws-prod']).toMatchObject({ mode: 'web_identity', duration: 3600 });
  });

  it('refuses a session policy template that is not JSON once placeholders are filled (e.g. a placeholder outside a string)', () => {
    writeFileSync(join(dir, 'bad.json'), '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":${pipeline_slug}}]}');
    writeFileSync(join(dir, 'good.json'), '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::b/${pipeline_slug}/${aws:username}/*"}]}');
    expect(() => load({ credential: { session_policy: './bad.json' } })).toThrow(/credentials\.aws-prod\.session_policy: .*bad\.json is not a JSON policy/);
    expect(load({ credential: { session_policy: './good.json' } }).credentials['aws-prod']).toMatchObject({ sessionPolicy: join(dir, 'good.json') });
  });
});
