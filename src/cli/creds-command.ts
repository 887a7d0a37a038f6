import type { Command } from 'commander';
import { request } from 'undici';
import { EXIT_FAILED, EXIT_USAGE } from './exit-codes.js';
import { exchangeAtPort, PORT_CLAIMS, requestAgentToken } from './token-command.js';
import { createProof, loadOrCreateHostKey, type HostKey } from '../dpop/host-key.js';
import { dpopKeyFrom } from './dpop-key-option.js';
import { UsageError } from './usage-error.js';
import { parseJsonObject } from './json-object.js';

interface CredsOptions {
  url?: string;
  value?: boolean;
  dpopKey?: string;
}

/** A refusal or failure: one line on stderr, nothing on stdout (an AWS credential_process reads stdout). */
class CredsFailure extends Error {}

/**
 * `port creds <name>`: the credential as Port's JSON on stdout and nothing else, so
 * `credential_process = port creds aws-prod` works (the AWS CLI reads the process's stdout:
 * https://docs.aws.amazon.com/cli/latest/userguide/cli-configure-sourcing-external.html). With $PORT_TOKEN it is the
 * bearer; otherwise, inside a job, the bearer is a Buildkite token from the agent and Port
 * decides the exchange and the credential in one request (POST /v1/credentials accepts it).
 */
export function registerCredsCommand(program: Command): void {
  program
    .command('creds')
    .description('print a brokered credential as JSON (usable as an AWS credential_process)')
    .argument('<name>', 'the credential, as named under credentials: in port.yaml')
    .option('--url <url>', 'Port base URL (default: $PORT_URL)')
    .option('--value', "print only a secret's value (no newline added)")
    .option('--dpop-key <path>', 'host key file for a Port token bound to it (RFC 9449 DPoP; default: $PORT_DPOP_KEY)')
    .action(async (name: string, opts: CredsOptions) => {
      const url = (opts.url ?? process.env.PORT_URL)?.replace(/\/+$/, '');
      if (!url) return usage("give Port's URL with --url or $PORT_URL");
      if (!/^[a-z0-9][a-z0-9_-]{0,127}$/.test(name)) return usage(`"${name.slice(0, 64)}" is not a credential name (lower-case letters, digits, - and _)`);
      try {
        const fromAgent = !process.env.PORT_TOKEN;
        const keyPath = dpopKeyFrom(opts.dpopKey);
        const dpop = keyPath !== undefined ? await loadOrCreateHostKey(keyPath) : undefined;
        const bearer = process.env.PORT_TOKEN || (await buildkiteTokenFromAgent(url));
        // A Buildkite token is a bearer token: with a host key, exchange it for a token bound to the key first.
        const token = dpop && fromAgent ? await boundToken(url, bearer, name, dpop) : bearer;
        const target = `${url}/v1/credentials/${name}`;
        const auth = dpop
          ? { authorization: `DPoP ${token}`, dpop: await createProof(dpop, { method: 'POST', url: target, accessToken: token }) }
          : { authorization: `Bearer ${token}` };
        const res = await request(target, {
          method: 'POST',
          headers: { ...auth, accept: 'application/json' },
          headersTimeout: 60_000,
          bodyTimeout: 60_000,
        });
        const text = await res.body.text();
        const body = parseJsonObject(text);
        if (res.statusCode !== 200 || body === undefined) {
          // With the agent's token Port refuses the exchange and the credential as one step.
          throw new CredsFailure(`${fromAgent && !dpop ? 'token exchange refused' : 'refused'} (${res.statusCode} ${str(body?.error) ?? 'error'}): ${str(body?.error_description) ?? 'Port answered no description'}`);
        }
        if (opts.value) {
          if (typeof body.value !== 'string') throw new CredsFailure(`--value is for secrets; "${name}" has no value field`);
          process.stdout.write(body.value);
        } else {
          process.stdout.write(`${text}\n`);
        }
      } catch (err) {
        process.stderr.write(`port: creds ${name}: ${oneLine((err as Error).message)}\n`);
        process.exitCode = err instanceof UsageError ? EXIT_USAGE : EXIT_FAILED;
      }
    });
}

/** RFC 9449 §5: the agent's Buildkite token exchanged for a Port token with scope=<name>, bound to the host key. */
async function boundToken(url: string, subject: string, name: string, key: HostKey): Promise<string> {
  const { status, body } = await exchangeAtPort(url, subject, { scope: name, dpop: key });
  if (status !== 200 || typeof body.access_token !== 'string') {
    throw new CredsFailure(`token exchange refused (${status} ${body.error ?? 'error'}): ${body.error_description ?? 'Port answered no description'}`);
  }
  return body.access_token;
}

/** Inside a job: a single-use Buildkite token for Port's audience, with the claims Port needs. */
async function buildkiteTokenFromAgent(url: string): Promise<string> {
  if (!process.env.BUILDKITE_JOB_ID) throw new CredsFailure('no $PORT_TOKEN and not inside a Buildkite job (BUILDKITE_JOB_ID is unset)');
  return requestAgentToken(process.env.PORT_AUDIENCE || url, PORT_CLAIMS);
}


function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

function oneLine(s: string): string {
  return s.replace(/\s+/g, ' ').trim();
}

function usage(message: string): void {
  process.stderr.write(`port: creds: ${message}\n`);
  process.exitCode = EXIT_USAGE;
}
