/**
 * `buildkite-agent redactor add [--format none|json] [file]`, as
 * `buildkite/agent:clicommand/redactor_add.go` behaves: reads the file or stdin, `none`
 * redacts the whole trimmed input, `json` every value of a flat string object, and sends
 * each to the Job API. Port's plugin can use it to keep a Port token out of job logs,
 * as github-api-proxy does with its proxy token (https://github.com/buildkite/github-api-proxy).
 */
import { describeFlags, parseFlags, stringFlag, type FlagSpec } from './agent-flags.js';
import { API_FLAGS, GLOBAL_FLAGS } from './agent-global-flags.js';
import { agentLogger, type AgentIo } from './agent-io.js';
import { CommandError } from './agent-command-error.js';
import { JobApiClient } from './job-api-client.js';

const FORMATS = ['json', 'none'];

const FLAGS: readonly FlagSpec[] = [
  ...GLOBAL_FLAGS,
  ...API_FLAGS,
  { name: 'format', kind: 'string', env: 'BUILDKITE_AGENT_REDACT_ADD_FORMAT', default: 'none', usage: "The format for the input, whose value is either 'json' or 'none'." },
];

const HELP = `Usage:

    buildkite-agent redactor add [options...] [file-with-content-to-redact]

Options:

${describeFlags(FLAGS)}
`;

function parseSecrets(format: string, input: string): string[] {
  if (format === 'none') return [input.trim()];
  let parsed: unknown;
  try {
    parsed = JSON.parse(input);
  } catch {
    throw new CommandError('failed to parse secrets');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new CommandError('failed to parse secrets');
  const values = Object.values(parsed);
  if (!values.every((v): v is string => typeof v === 'string')) throw new CommandError('failed to parse secrets');
  return values;
}

export async function redactorAdd(args: readonly string[], io: AgentIo): Promise<number> {
  const { values, positional, help } = parseFlags(FLAGS, args, io.env);
  if (help) {
    io.stdout(HELP);
    return 0;
  }
  const format = stringFlag(values, 'format');
  if (!FORMATS.includes(format)) throw new CommandError(`invalid format: ${format}, must be one of ["json" "none"]`);
  const file = positional[0];
  const log = agentLogger(io);
  log.info(`Reading secrets from ${file ?? '(stdin)'} for redaction`);
  let input: string;
  try {
    input = file === undefined ? await io.readStdin() : await io.readFile(file);
  } catch {
    throw new CommandError(`failed to open file ${file ?? '(stdin)'}`);
  }
  const secrets = parseSecrets(format, input);
  let client: JobApiClient;
  try {
    client = await JobApiClient.fromEnv(io.env);
  } catch (err) {
    throw new CommandError(`failed to create Job API client: ${err instanceof Error ? err.message : String(err)}`);
  }
  try {
    for (const secret of secrets) await client.createRedaction(secret);
  } catch {
    throw new CommandError('failed to redact secrets');
  }
  return 0;
}
