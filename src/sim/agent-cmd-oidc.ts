/**
 * `buildkite-agent oidc request-token`, as `buildkite/agent:clicommand/oidc_request_token.go`
 * (v3.121) behaves (https://buildkite.com/docs/agent/v3/cli-oidc): the flags and their env vars, the lifetime and format
 * checks, the Agent API call with retries, redaction through the Job API unless
 * `--skip-redaction`, then the JWT (or the GCP executable-credential JSON) on stdout.
 */
import { AgentApiError, requestOidcToken } from './agent-api-client.js';
import {
  boolFlag,
  describeFlags,
  intFlag,
  listFlag,
  parseFlags,
  stringFlag,
  type FlagSpec,
} from './agent-flags.js';
import { API_FLAGS, GLOBAL_FLAGS } from './agent-global-flags.js';
import { agentLogger, type AgentIo } from './agent-io.js';
import { CommandError } from './agent-command-error.js';
import { JobApiClient } from './job-api-client.js';

const FLAGS: readonly FlagSpec[] = [
  ...GLOBAL_FLAGS,
  ...API_FLAGS,
  { name: 'audience', kind: 'string', usage: 'The audience that will consume the OIDC token. The API will choose a default audience if it is omitted.' },
  { name: 'lifetime', kind: 'int', usage: 'The time (in seconds) the OIDC token will be valid for before expiry. Must be a non-negative integer. If the flag is omitted or set to 0, the API will choose a default finite lifetime.' },
  { name: 'job', kind: 'string', env: 'BUILDKITE_JOB_ID', usage: 'Buildkite Job Id to claim in the OIDC token' },
  { name: 'subject-claim', kind: 'string', env: 'BUILDKITE_OIDC_TOKEN_SUBJECT_CLAIM', usage: "An immutable claim to use as the token's subject (e.g. pipeline_id, cluster_id). If omitted, the default compound subject is used." },
  { name: 'claim', kind: 'list', env: 'BUILDKITE_OIDC_TOKEN_CLAIMS', usage: 'Claims to add to the OIDC token' },
  { name: 'aws-session-tag', kind: 'list', env: 'BUILDKITE_OIDC_TOKEN_AWS_SESSION_TAGS', usage: 'Add claims as AWS Session Tags' },
  { name: 'skip-redaction', kind: 'bool', env: 'BUILDKITE_AGENT_OIDC_REQUEST_TOKEN_SKIP_TOKEN_REDACTION', usage: "Skip redacting the OIDC token from the logs. Then, the command will print the token to the Job's logs if called directly (default: false)" },
  { name: 'format', kind: 'string', default: 'jwt', usage: "The format to output the token in. Supported values are 'jwt' (the default) and 'gcp'." },
];

const HELP = `Usage:

    buildkite-agent oidc request-token [options...]

Description:

Requests and prints an OIDC token from Buildkite that claims the Job ID
(amongst other things) and the specified audience. If no audience is
specified, the endpoint's default audience will be claimed.

Example:

    $ buildkite-agent oidc request-token --audience sts.amazonaws.com

Requests and prints an OIDC token from Buildkite that claims the Job ID
(amongst other things) and the audience "sts.amazonaws.com".

Options:

${describeFlags(FLAGS)}
`;

/** The GCP executable-sourced credential wrapper (`--format gcp`, agent v3.107.0). */
function gcpJson(token: string): string {
  return JSON.stringify({ id_token: token, token_type: 'urn:ietf:params:oauth:token-type:jwt', version: 1, success: true });
}

export async function oidcRequestToken(args: readonly string[], io: AgentIo): Promise<number> {
  const { values, help } = parseFlags(FLAGS, args, io.env);
  if (help) {
    io.stdout(HELP);
    return 0;
  }
  const log = agentLogger(io);
  // The config loader validates required fields in struct order: the access token, then the job.
  const accessToken = stringFlag(values, 'agent-access-token');
  if (accessToken === '') throw new CommandError('Missing agent-access-token. See: `buildkite-agent request-token --help`');
  const job = stringFlag(values, 'job');
  if (job === '') throw new CommandError('Missing job. See: `buildkite-agent request-token --help`');

  const lifetime = intFlag(values, 'lifetime');
  if (lifetime < 0) throw new CommandError(`lifetime ${lifetime} must be a non-negative integer.`);
  const format = stringFlag(values, 'format');
  if (format !== 'jwt' && format !== 'gcp') {
    throw new CommandError(`format "${format}" is not valid. Supported values are 'jwt' and 'gcp'`);
  }
  const audience = stringFlag(values, 'audience');

  let token: string;
  try {
    token = await requestOidcToken(io, log, {
      endpoint: stringFlag(values, 'endpoint'),
      accessToken,
      job,
      audience,
      lifetime,
      claims: listFlag(values, 'claim'),
      awsSessionTags: listFlag(values, 'aws-session-tag'),
      subjectClaim: stringFlag(values, 'subject-claim'),
    });
  } catch (err) {
    log.error(audience !== '' ? `Could not obtain OIDC token for audience ${audience}` : 'Could not obtain OIDC token for default audience');
    throw new CommandError(err instanceof AgentApiError || err instanceof Error ? err.message : String(err));
  }

  // Redaction is on by default since v3.104.0 (https://buildkite.com/docs/agent/v3/cli-oidc) and needs the Job API.
  if (!boolFlag(values, 'skip-redaction')) {
    let client: JobApiClient;
    try {
      client = await JobApiClient.fromEnv(io.env);
    } catch (err) {
      throw new CommandError(`failed to create Job API client: ${err instanceof Error ? err.message : String(err)}`);
    }
    try {
      await client.createRedaction(token);
    } catch (err) {
      const detail = err instanceof Error ? err.message : String(err);
      throw new CommandError(
        boolFlag(values, 'debug') ? `failed to add secret to the redactor: ${detail}` : 'failed to redact OIDC token',
      );
    }
  }

  io.stdout(`${format === 'gcp' ? gcpJson(token) : token}\n`);
  return 0;
}
