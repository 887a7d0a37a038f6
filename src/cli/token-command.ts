import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { Command } from 'commander';
import { request } from 'undici';
import { EXIT_FAILED, EXIT_USAGE } from './exit-codes.js';
import { createProof, loadOrCreateHostKey, type HostKey } from '../dpop/host-key.js';
import { dpopKeyFrom } from './dpop-key-option.js';
import { UsageError } from './usage-error.js';

const run = promisify(execFile);

interface ExchangeOptions {
  url?: string;
  scope?: string;
  audience?: string;
  bkAudience?: string;
  claim?: string;
  json?: boolean;
  stdin?: boolean;
  dpopKey?: string;
}

/** Reads all of stdin when it is a pipe or file; '' when it is a terminal. */
async function readStdin(): Promise<string> {
  if (process.stdin.isTTY) return '';
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8').trim();
}

/**
 * Asks the agent for a job's OIDC token (`buildkite-agent oidc request-token`:
 * https://buildkite.com/docs/agent/v3/cli-oidc). Also used by `port creds`.
 */
export async function requestAgentToken(audience: string, claims: string | undefined): Promise<string> {
  const args = ['oidc', 'request-token', '--audience', audience];
  if (claims) args.push('--claim', claims);
  try {
    const { stdout } = await run('buildkite-agent', args, { timeout: 60_000, maxBuffer: 1024 * 1024 });
    return stdout.trim();
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    if (e.code === 'ENOENT') throw new Error('no token on stdin and buildkite-agent is not on PATH; pipe a Buildkite OIDC token in or run inside a job');
    throw new Error(`buildkite-agent oidc request-token failed: ${(e.stderr ?? e.message).trim().split('\n').at(-1)}`);
  }
}

/**
 * Optional claims Port needs beyond the default ones: the pipeline's and organization's
 * UUIDs, and the cluster and queue that make up the job's Pool. Buildkite includes them
 * only when asked with --claim (https://buildkite.com/docs/agent/v3/cli-oidc).
 */
export const PORT_CLAIMS = 'organization_id,pipeline_id,cluster_id,cluster_name,queue_id,queue_key';

/**
 * RFC 8693 exchange at Port; resolves to the HTTP status and the JSON body. Also used by `port creds`.
 * With `dpop`, a DPoP proof made with that key asks for a token bound to it (RFC 9449 §5).
 */
export async function exchangeAtPort(
  url: string,
  subject: string,
  opts: { scope?: string | undefined; audience?: string | undefined; dpop?: HostKey | undefined },
): Promise<{ status: number; body: Record<string, string> }> {
  const form = new URLSearchParams({
    grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
    subject_token: subject,
    subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
  });
  if (opts.scope) form.set('scope', opts.scope);
  if (opts.audience) form.set('audience', opts.audience);
  const proof = opts.dpop ? await createProof(opts.dpop, { method: 'POST', url: `${url}/oauth/token` }) : undefined;
  const res = await request(`${url}/oauth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json', ...(proof !== undefined ? { dpop: proof } : {}) },
    body: form.toString(),
    headersTimeout: 30_000,
    bodyTimeout: 30_000,
  });
  const body = (await res.body.json().catch(() => ({}))) as Record<string, string>;
  return { status: res.statusCode, body };
}

export function registerTokenCommands(program: Command): void {
  const token = program.command('token').description('Port tokens');
  token
    .command('exchange')
    .description('exchange a Buildkite OIDC token (stdin, or from buildkite-agent) for a Port token and print it')
    .option('--url <url>', 'Port base URL (default: $PORT_URL)')
    .option('--scope <names>', 'space-separated grants to request (default: $PORT_SCOPE)')
    .option('--audience <aud>', "the Port token's audience (default: Port's public URL)")
    .option('--bk-audience <aud>', 'audience of the Buildkite token to request (default: $PORT_AUDIENCE, else --url)')
    .option('--claim <list>', `optional Buildkite claims to request, comma-separated (default: ${PORT_CLAIMS}, which pools: need)`)
    .option('--json', 'print the whole token response as JSON')
    .option('--stdin', 'read the Buildkite token from stdin even inside a job')
    .option('--dpop-key <path>', "bind the Port token to this host key file, created on first use (RFC 9449 DPoP; default: $PORT_DPOP_KEY)")
    .action(async (opts: ExchangeOptions) => {
      const url = (opts.url ?? process.env.PORT_URL)?.replace(/\/+$/, '');
      if (!url) {
        process.stderr.write('port: token exchange: give Port\'s URL with --url or $PORT_URL\n');
        process.exitCode = EXIT_USAGE;
        return;
      }
      try {
        // Inside a job (BUILDKITE_JOB_ID set) the agent is asked, unless --stdin says otherwise:
        // a job's stdin may be an open pipe that never ends.
        const fromAgent = !opts.stdin && (process.env.BUILDKITE_JOB_ID ?? '') !== '';
        const subject = fromAgent
          ? await requestAgentToken(opts.bkAudience ?? process.env.PORT_AUDIENCE ?? url, opts.claim ?? PORT_CLAIMS)
          : await readStdin();
        if (!subject) throw new Error('no Buildkite token: pipe one in on stdin, or run inside a job where buildkite-agent is on PATH');
        const keyPath = dpopKeyFrom(opts.dpopKey);
        const dpop = keyPath !== undefined ? await loadOrCreateHostKey(keyPath) : undefined;
        const { status, body } = await exchangeAtPort(url, subject, { scope: opts.scope ?? process.env.PORT_SCOPE, audience: opts.audience, dpop });
        if (status !== 200) {
          process.stderr.write(`port: token exchange refused (${status} ${body.error ?? 'error'}): ${body.error_description ?? 'no description'}\n`);
          process.exitCode = EXIT_FAILED;
          return;
        }
        // RFC 9449 §5: a bound token comes back as token_type DPoP; anything else is a bearer token.
        if (dpop && body.token_type !== 'DPoP') process.stderr.write('port: token exchange: Port did not bind the token to the key (token_type is not DPoP); it is a bearer token\n');
        process.stdout.write(opts.json ? `${JSON.stringify(body, null, 2)}\n` : `${body.access_token}\n`);
      } catch (err) {
        process.stderr.write(`port: token exchange failed: ${(err as Error).message}\n`);
        process.exitCode = err instanceof UsageError ? EXIT_USAGE : EXIT_FAILED;
      }
    });
}
