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

function loadRaw(extra: Record<string, unknown>) {
  return configFromObject(
    { server: { public_url: 'https://port.acme.test' }, buildkite: { organization: 'acme' }, policies: './policies', ...extra },
    join(dir, 'port.yaml'),
  );
}

describe('a port_token credential can\'t be minted for an AWS STS audience', () => {
  const role = { type: 'aws_role', role_arn: 'arn:aws:iam::123456789012:role/deploy' };

  it('refuses sts.amazonaws.com (in any case), with or without aws_role credentials, naming the bypass', () => {
    for (const audience of ['sts.amazonaws.com', 'STS.amazonaws.com']) {
      expect(() => loadRaw({ credentials: { 'sts-token': { type: 'port_token', audience } } })).toThrow(
        /credentials\.sts-token\.audience: ".*" is an AWS STS audience .*bypassing the aws_role decision/,
      );
    }
  });

  it('refuses an aws_role credential\'s web_identity_audience, declared before or after the port_token', () => {
    const custom = { ...role, web_identity_audience: 'port-federation' };
    expect(() => loadRaw({ credentials: { 'aws-prod': custom, tok: { type: 'port_token', audience: 'port-federation' } } })).toThrow(/credentials\.tok\.audience: "port-federation" is an AWS STS audience/);
    expect(() => loadRaw({ credentials: { tok: { type: 'port_token', audience: 'port-federation' }, 'aws-prod': custom } })).toThrow(/credentials\.tok\.audience/);
  });

  it('accepts a downstream service\'s audience', () => {
    const c = loadRaw({ credentials: { 'aws-prod': role, tok: { type: 'port_token', audience: 'https://deploy.acme.test' } } });
    expect(c.credentials.tok).toMatchObject({ audience: 'https://deploy.acme.test' });
    expect(c.credentials['aws-prod']).toMatchObject({ stsConcurrency: 8 });
  });
});

describe('upstreams.<name>.inject.aws_sigv4.forward_headers', () => {
  const upstream = (forward_headers: unknown) => ({
    credentials: { 'aws-api': { type: 'aws_role', role_arn: 'arn:aws:iam::123456789012:role/api' } },
    upstreams: { dynamo: { url: 'https://dynamodb.us-east-1.amazonaws.com', inject: { aws_sigv4: { service: 'dynamodb', region: 'us-east-1', credential: 'aws-api', forward_headers } } } },
  });

  it('defaults to none and keeps names and -* families lower-cased', () => {
    expect(loadRaw(upstream(undefined)).upstreams.dynamo!.inject).toMatchObject({ kind: 'aws_sigv4', forwardHeaders: [] });
    expect(loadRaw(upstream(['X-Amz-Target', 'x-amz-meta-*'])).upstreams.dynamo!.inject).toMatchObject({ forwardHeaders: ['x-amz-target', 'x-amz-meta-*'] });
  });

  it('refuses a blanket x-amz-*, a header that is not x-amz-*, and the signature\'s own headers', () => {
    expect(() => loadRaw(upstream(['x-amz-*']))).toThrow(/forward_headers\[0\]: found "x-amz-\*"; expected an x-amz-\* header name or a family ending in -\*/);
    expect(() => loadRaw(upstream(['content-type']))).toThrow(/forward_headers\[0\]: found "content-type"; expected an x-amz-\* header name or a family ending in -\*/);
    expect(() => loadRaw(upstream(['x-amz-meta*']))).toThrow(/forward_headers\[0\]/);
    expect(() => loadRaw(upstream(['x-amz-security-token']))).toThrow(/forward_headers: x-amz-security-token is set by Port's signature/);
  });
});

describe('upstreams.<name>.inject.aws_sigv4.allow_subresources', () => {
  const upstream = (service: string, allow_subresources: unknown) => ({
    credentials: { 'aws-api': { type: 'aws_role', role_arn: 'arn:aws:iam::123456789012:role/api' } },
    upstreams: { store: { url: 'https://s3.eu-west-1.amazonaws.com', inject: { aws_sigv4: { service, region: 'eu-west-1', credential: 'aws-api', allow_subresources } } } },
  });

  it('defaults to none and keeps guarded sub-resources, named in any case, lower-cased', () => {
    expect(loadRaw(upstream('s3', undefined)).upstreams.store!.inject).toMatchObject({ kind: 'aws_sigv4', allowSubresources: [] });
    expect(loadRaw(upstream('s3', ['acl', 'PublicAccessBlock', 'legal-hold'])).upstreams.store!.inject).toMatchObject({ allowSubresources: ['acl', 'publicaccessblock', 'legal-hold'] });
  });

  it('refuses a name Port does not guard (a typo would silently allow nothing) and any list on a service other than s3', () => {
    expect(() => loadRaw(upstream('s3', ['acls']))).toThrow(/upstreams\.store\.inject\.aws_sigv4\.allow_subresources: "acls" is not a sub-resource Port refuses; use one of acl, policy, /);
    expect(() => loadRaw(upstream('s3', ['list-type']))).toThrow(/"list-type" is not a sub-resource Port refuses/);
    expect(() => loadRaw(upstream('execute-api', ['acl']))).toThrow(/allow_subresources: only applies to service: s3/);
    expect(() => loadRaw(upstream('s3', 'acl'))).toThrow(/upstreams\.store\.inject/);
  });
});
