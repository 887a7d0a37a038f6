/**
 * plugin.yml: its keys (https://buildkite.com/docs/pipelines/integrations/plugins/writing),
 * its `configuration` as a JSON Schema checked with Ajv (already installed, through
 * Fastify) against the draft-07 meta-schema, the options it names against those the hooks
 * read (lib/config.bash), and which step configurations it accepts and refuses — the
 * README's examples among the accepted ones. Also the env and source helpers the e2e
 * tests use, against the agent's rules.
 */
import { accessSync, constants, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Ajv } from 'ajv';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { pluginEnvironment, pluginName, type PluginConfig } from './plugin-env.js';
import { pluginIdentifier, pluginSource } from './plugin-source.js';

const PLUGIN_DIR = resolve(import.meta.dirname, '..', '..', 'plugin');
const definition = parse(readFileSync(join(PLUGIN_DIR, 'plugin.yml'), 'utf8')) as Record<string, unknown>;
const ajv = new Ajv({ allErrors: true });
const validate = ajv.compile(definition.configuration as object);

/** Every `plugins:` example in plugin/README.md, as [location, config]. */
function readmeExamples(): Array<[string, PluginConfig]> {
  const readme = readFileSync(join(PLUGIN_DIR, 'README.md'), 'utf8');
  const configs: Array<[string, PluginConfig]> = [];
  for (const [, block] of readme.matchAll(/```yaml\n([\s\S]*?)```/g)) {
    const doc = parse(block!) as { steps?: Array<{ plugins?: Array<Record<string, PluginConfig>> }> };
    for (const step of doc.steps ?? []) {
      for (const plugin of step.plugins ?? []) {
        for (const [location, config] of Object.entries(plugin)) configs.push([location, config]);
      }
    }
  }
  return configs;
}

describe('plugin.yml', () => {
  it('has the conventional keys and declares what the hooks run', () => {
    expect(Object.keys(definition).sort()).toEqual(['author', 'configuration', 'description', 'name', 'requirements']);
    expect(definition.requirements).toEqual(['bash', 'curl', 'jq']);
    const config = definition.configuration as Record<string, unknown>;
    expect(config.additionalProperties).toBe(false);
    expect(config.required).toEqual(['url']);
    expect(ajv.validateSchema(config)).toBe(true);
  });

  it('names every option the hooks read, and no other (lib/config.bash)', () => {
    const configBash = readFileSync(join(PLUGIN_DIR, 'lib', 'config.bash'), 'utf8');
    const known = JSON.parse(/^readonly PORT_KNOWN_OPTIONS='(.*)'$/m.exec(configBash)![1]!) as string[];
    const properties = (definition.configuration as { properties: Record<string, unknown> }).properties;
    expect(Object.keys(properties).sort()).toEqual([...known].sort());
    for (const [name, schema] of Object.entries(properties)) expect((schema as { description?: string }).description, name).toBeTruthy();
  });

  it('accepts every example in plugin/README.md, each referencing the plugin as published or vendored', () => {
    const examples = readmeExamples();
    expect(examples.length).toBeGreaterThanOrEqual(4);
    const locations = new Set(examples.map(([location]) => location));
    expect([...locations].sort()).toEqual(['./.buildkite/plugins/port', 'your-org/port#v1.0.0']);
    for (const [, example] of examples) expect(validate(example) ? [] : validate.errors, JSON.stringify(example)).toEqual([]);
  });

  it.each<[string, PluginConfig]>([
    ['missing url', { 'export-token': true }],
    ['plain http to a remote host', { url: 'http://port.example.com', 'export-token': true }],
    ['a url with credentials', { url: 'https://user@port.example.com', 'export-token': true }],
    ['unknown option', { url: 'https://port.example.com', 'export-token': true, scope: ['a'] }],
    ['scopes as a string', { url: 'https://port.example.com', 'export-token': true, scopes: 'deploy-token' }],
    ['export-token as a string', { url: 'https://port.example.com', 'export-token': 'true' }],
    ['nothing to export', { url: 'https://port.example.com', scopes: ['deploy-token'] }],
    ['export-token false alone', { url: 'https://port.example.com', 'export-token': false }],
    ['a lower-case secret variable', { url: 'https://port.example.com', secrets: { npm_token: 'npm-publish' } }],
    ['a reserved secret variable', { url: 'https://port.example.com', secrets: { LD_PRELOAD: 'npm-publish' } }],
    ['a BUILDKITE_ secret variable', { url: 'https://port.example.com', secrets: { BUILDKITE_AGENT_ACCESS_TOKEN: 'npm-publish' } }],
    ['a secret naming two credentials', { url: 'https://port.example.com', secrets: { NPM: ['a', 'b'] } }],
    ['a bad credential name', { url: 'https://port.example.com', 'aws-profile': 'AWS Prod' }],
    ['aws-region without aws-profile', { url: 'https://port.example.com', 'export-token': true, 'aws-region': 'eu-west-1' }],
    ['a bad region', { url: 'https://port.example.com', 'aws-profile': 'aws-prod', 'aws-region': 'Europe' }],
    ['an audience with a newline', { url: 'https://port.example.com', 'export-token': true, audience: 'https://port.example.com\n--claim x' }],
    ['a url that is not a string', { url: 42, 'export-token': true }],
  ])('refuses %s', (_name, config) => {
    expect(validate(config)).toBe(false);
  });
});

describe('the plugin files', () => {
  it('has executable hooks and tool (the agent runs plugin hooks only when executable)', () => {
    for (const f of ['hooks/environment', 'hooks/pre-exit', 'bin/port-credential-process']) {
      expect(() => accessSync(join(PLUGIN_DIR, f), constants.X_OK), f).not.toThrow();
    }
  });
});

describe('pluginSource (where the agent gets a plugin from)', () => {
  it('org/name#ref is github.com/org/name-buildkite-plugin at ref; a path starting with . is vendored', () => {
    expect(pluginSource('your-org/port#v1.0.0')).toEqual({ kind: 'git', repository: 'https://github.com/your-org/port-buildkite-plugin', version: 'v1.0.0' });
    expect(pluginSource('docker#v5.0.0')).toEqual({ kind: 'git', repository: 'https://github.com/buildkite-plugins/docker-buildkite-plugin', version: 'v5.0.0' });
    expect(pluginSource('ssh://git@git.example.com/platform/port-buildkite-plugin.git#v1.0.0')).toEqual({
      kind: 'git',
      repository: 'ssh://git@git.example.com/platform/port-buildkite-plugin.git',
      version: 'v1.0.0',
    });
    expect(pluginSource('./.buildkite/plugins/port')).toEqual({ kind: 'vendored', path: './.buildkite/plugins/port' });
    expect(pluginIdentifier('your-org/port#v1.0.0')).toBe('github-com-your-org-port-buildkite-plugin-v1-0-0');
    expect(pluginName('./.buildkite/plugins/port')).toBe('port');
  });
});

describe('pluginEnvironment (the agent’s config → env rules)', () => {
  it('names, lists, maps, booleans and the JSON copy', () => {
    expect(pluginName('acme/port#v1.0.0')).toBe('port');
    expect(pluginName('https://github.com/acme/port-buildkite-plugin.git#v1')).toBe('port');
    expect(pluginName('ssh://git@example.com/acme/My Port-buildkite-plugin')).toBe('my-port');
    const env = pluginEnvironment('acme/port#v1.0.0', {
      url: 'https://port.example.com',
      'export-token': true,
      scopes: ['a', 'b'],
      secrets: { NPM_TOKEN: 'npm-publish' },
      'weird key': { 'x-y': 1.5 },
    });
    expect(env).toMatchObject({
      BUILDKITE_PLUGIN_NAME: 'PORT',
      BUILDKITE_PLUGIN_PORT_URL: 'https://port.example.com',
      BUILDKITE_PLUGIN_PORT_EXPORT_TOKEN: 'true',
      BUILDKITE_PLUGIN_PORT_SCOPES_0: 'a',
      BUILDKITE_PLUGIN_PORT_SCOPES_1: 'b',
      BUILDKITE_PLUGIN_PORT_SECRETS_NPM_TOKEN: 'npm-publish',
      BUILDKITE_PLUGIN_PORT_WEIRD_KEY_X_Y: '1.5',
    });
    expect(env.BUILDKITE_PLUGIN_CONFIGURATION).toBe(
      '{"export-token":true,"scopes":["a","b"],"secrets":{"NPM_TOKEN":"npm-publish"},"url":"https://port.example.com","weird key":{"x-y":1.5}}',
    );
    // The agent's deprecated-name fan-out: a double underscore also appears collapsed.
    expect(pluginEnvironment('acme/port', { 'a--b': 'x' })).toMatchObject({ BUILDKITE_PLUGIN_PORT_A__B: 'x', BUILDKITE_PLUGIN_PORT_A_B: 'x' });
    expect(() => pluginEnvironment('acme/port', { url: null })).toThrow(/Unknown type/);
  });
});
