import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
// Ajv is not a dependency of Port: it comes with fastify, and only this test uses it.
import Ajv2020Module from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { configJsonSchema } from '../../src/config/json-schema.js';

const schema = configJsonSchema();
// CommonJS modules: under NodeNext the class and the plugin are their `default` export.
const Ajv2020 = (Ajv2020Module as unknown as { default: typeof Ajv2020Module.default }).default ?? Ajv2020Module;
const addFormats = (addFormatsModule as unknown as { default: typeof addFormatsModule.default }).default ?? addFormatsModule;
const ajv = new Ajv2020({ allErrors: true, strict: true, strictTypes: false });
addFormats(ajv);
const validate = ajv.compile(schema);

const examples = readdirSync('examples', { withFileTypes: true })
  .filter((d) => d.isDirectory() && existsSync(join('examples', d.name, 'port.yaml')))
  .map((d) => join('examples', d.name, 'port.yaml'));

const minimal = { server: { public_url: 'https://port.example' }, buildkite: { organization: 'acme' } };

describe('configJsonSchema()', () => {
  it('is draft 2020-12 and strict about keys', () => {
    expect(schema.$schema).toBe('https://json-schema.org/draft/2020-12/schema');
    expect(schema.additionalProperties).toBe(false);
    expect(schema.required).toEqual(['server', 'buildkite']);
  });

  it.each(examples)('accepts %s', (file) => {
    const ok = validate(parse(readFileSync(file, 'utf8')));
    expect(validate.errors ?? []).toEqual([]);
    expect(ok).toBe(true);
  });

  it('accepts what users write: durations, sizes, references, every inject kind and credential type', () => {
    const config = {
      ...minimal,
      store: { feed_max_lag: '5s', lease_ttl: 30 },
      issuer: { token_ttl: '15m', key_encryption_key: 'env:PORT_KEK' },
      credentials: {
        npm: { type: 'secret', value: 'command:vault read x', cache_for: '5m' },
        deploy: { type: 'port_token', audience: 'https://deploy.example' },
        aws: { type: 'aws_role', role_arn: 'arn:aws:iam::123456789012:role/deploy', session_tags: { pipeline: 'pipeline_slug' } },
      },
      upstreams: {
        a: { url: 'https://a.example', max_body: '64MiB', inject: { bearer: 'env:A' } },
        b: { url: 'https://b.example', inject: { basic: { username: 'u', password: 'file:./p' } } },
        c: { url: 'http://c.example', inject: { header: { name: 'X-Key', value: 'env:C' } } },
        d: { url: 'https://s3.example', inject: { aws_sigv4: { service: 's3', region: 'us-east-1', credential: 'aws' } } },
      },
    };
    expect(validate(config), JSON.stringify(validate.errors)).toBe(true);
  });

  it.each([
    ['an unknown key', { ...minimal, polices: './p' }],
    ['a missing required key', { server: {}, buildkite: { organization: 'acme' } }],
    ['an inline secret', { ...minimal, server: { ...minimal.server, admin_token: 'hunter2' } }],
    ['command: outside a secret credential', { ...minimal, scim: { token: 'command:cat x' } }],
    ['a duration with an unknown unit', { ...minimal, issuer: { token_ttl: '15 minutes' } }],
    ['a duration over its maximum', { ...minimal, buildkite: { organization: 'acme', clock_skew: 3600 } }],
    ['an unknown credential type', { ...minimal, credentials: { x: { type: 'aws', value: 'env:X' } } }],
    ['two inject kinds', { ...minimal, upstreams: { a: { url: 'https://a.example', inject: { bearer: 'env:A', header: { name: 'X', value: 'env:B' } } } } }],
    ['a list where a map belongs', { ...minimal, upstreams: [{ url: 'https://a.example' }] }],
    ['a non-http URL', { ...minimal, server: { public_url: 'ftp://port.example' } }],
    ['an upper-case upstream name', { ...minimal, upstreams: { NPM: { url: 'https://a.example' } } }],
  ])('refuses %s', (_name, config) => {
    expect(validate(config)).toBe(false);
  });

  it('describes every key and gives durations and sizes in the form users write them', () => {
    const undocumented: string[] = [];
    const visit = (node: unknown, path: string): void => {
      if (node === null || typeof node !== 'object') return;
      const n = node as Record<string, unknown>;
      for (const [k, child] of Object.entries((n.properties as Record<string, unknown>) ?? {})) {
        if (typeof (child as { description?: unknown }).description !== 'string') undocumented.push(`${path}${k}`);
        visit(child, `${path}${k}.`);
      }
      for (const key of ['additionalProperties', 'items']) if (typeof n[key] === 'object') visit(n[key], `${path}*.`);
      for (const key of ['anyOf', 'oneOf']) if (Array.isArray(n[key])) for (const o of n[key] as unknown[]) visit(o, path);
    };
    visit(schema, '');
    expect(undocumented).toEqual([]);
    const props = schema.properties as Record<string, { properties: Record<string, { default?: unknown; anyOf?: unknown[] }> }>;
    expect(props.issuer!.properties.token_ttl!.default).toBe('15m');
    expect(props.relay!.properties.max_header_bytes!.default).toBe('16KiB');
    expect(props.issuer!.properties.token_ttl!.anyOf).toHaveLength(2);
  });
});
