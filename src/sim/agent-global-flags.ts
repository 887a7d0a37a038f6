/**
 * Flags every API-using `buildkite-agent` command accepts (`clicommand/global.go`:
 * globalFlags() and apiFlags()). The stand-in uses the access token, the endpoint and
 * `--debug`; the rest are accepted so scripts that pass them keep working.
 */
import type { FlagSpec } from './agent-flags.js';

/** Default Agent API endpoint up to v3.121.x (the agent's `--endpoint` default, clicommand/global.go in github.com/buildkite/agent). */
export const DEFAULT_ENDPOINT = 'https://agent.buildkite.com/v3';

export const GLOBAL_FLAGS: readonly FlagSpec[] = [
  { name: 'debug', kind: 'bool', env: 'BUILDKITE_AGENT_DEBUG', usage: 'Enable debug mode' },
  { name: 'log-level', kind: 'string', env: 'BUILDKITE_AGENT_LOG_LEVEL', default: 'notice', usage: 'Set the log level' },
  { name: 'experiment', kind: 'list', env: 'BUILDKITE_AGENT_EXPERIMENT', usage: 'Enable experiments' },
  { name: 'profile', kind: 'string', env: 'BUILDKITE_AGENT_PROFILE', usage: 'Enable a profiling mode' },
  { name: 'no-color', kind: 'bool', env: 'BUILDKITE_AGENT_NO_COLOR', usage: "Don't show colors in logging" },
];

export const API_FLAGS: readonly FlagSpec[] = [
  {
    name: 'agent-access-token',
    kind: 'string',
    env: 'BUILDKITE_AGENT_ACCESS_TOKEN',
    usage: 'The access token used to identify the agent',
  },
  { name: 'endpoint', kind: 'string', env: 'BUILDKITE_AGENT_ENDPOINT', default: DEFAULT_ENDPOINT, usage: 'The Agent API endpoint' },
  { name: 'no-http2', kind: 'bool', env: 'BUILDKITE_NO_HTTP2', usage: 'Disable HTTP2 when communicating with the Agent API' },
  { name: 'debug-http', kind: 'bool', env: 'BUILDKITE_AGENT_DEBUG_HTTP', usage: 'Enable HTTP debug mode' },
  { name: 'trace-http', kind: 'bool', env: 'BUILDKITE_AGENT_TRACE_HTTP', usage: 'Enable HTTP trace mode' },
];
