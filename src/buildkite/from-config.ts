/**
 * A `BuildkiteApi` for Port's configuration: `buildkite.api_url`, the organization, and
 * the API token read from its secret reference at every request, so a rotated secret
 * file or variable applies without a restart.
 */
import type { PortConfig } from '../config/config.js';
import { resolveSecretRef } from '../config/secret-ref.js';
import { ConfigError } from '../errors.js';
import { BuildkiteApi, type BuildkiteApiOptions } from './client.js';

export function buildkiteApiFromConfig(
  buildkite: PortConfig['buildkite'],
  overrides: Partial<Omit<BuildkiteApiOptions, 'baseUrl' | 'token' | 'organization'>> = {},
): BuildkiteApi {
  const source = buildkite.apiToken;
  if (source === undefined) {
    throw new ConfigError('buildkite.api_token is not set; the approvals flow needs a Buildkite API token (scopes read_builds, write_builds, read_organizations; read_agents for the buildkite agent check).');
  }
  return new BuildkiteApi({
    ...overrides,
    baseUrl: buildkite.apiUrl,
    organization: buildkite.organization,
    token: () => resolveSecretRef(source.ref, source.key, source.baseDir),
  });
}
