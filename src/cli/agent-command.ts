/**
 * `port agent attest`: run on a Buildkite agent host, inside a job's environment (the
 * agent's `environment` or `pre-bootstrap` hook), it proves to Port which AWS instance and
 * instance role the agent runs on and registers the host's DPoP key:
 * - a Buildkite OIDC token of the job (`buildkite-agent oidc request-token`, with the
 *   `cluster_name,queue_key` claims that name the pool);
 * - `aws_iam`: sts:GetCallerIdentity signed with the instance role credentials of the
 *   standard AWS credential chain (the instance metadata service on EC2), never sent by
 *   the host — Port sends it to STS;
 * - `aws_iid`: the instance identity document and its signature, from IMDSv2;
 * - a DPoP proof (RFC 9449) made with the host key, which the command loads or creates.
 * Exit 0 attested, 1 refused or failed (Port's reason on stderr), 2 usage.
 */
import type { Command } from 'commander';
import { request } from 'undici';
import { signCallerIdentityRequest, type SignedCallerIdentityRequest } from '../agents/attestation/aws-iam.js';
import { createProof, loadOrCreateHostKey } from '../dpop/host-key.js';
import { ImdsError, imdsEndpoint, instanceIdentity, type InstanceIdentityProof } from './agent-imds.js';
import { EXIT_FAILED, EXIT_USAGE } from './exit-codes.js';
import { hostKeyPath, refuseKeyInBuildDirs } from './host-key-path.js';
import { PORT_CLAIMS, requestAgentToken } from './token-command.js';
import { UsageError } from './usage-error.js';
import { parseJsonObject } from './json-object.js';
import { rm, writeFile } from 'node:fs/promises';

/** Where agents attest (src/agents/attestation-service.ts ATTEST_PATH; not imported, to keep the CLI light). */
const ATTEST_PATH = '/v1/agents/attest';
const METHODS = ['aws_iam', 'aws_iid'] as const;
type Method = (typeof METHODS)[number];
/** Port's refusal of a signed request it already accepted (src/agents/attestation-service.ts). */
const SIGNED_REQUEST_REUSED = 'This signed sts:GetCallerIdentity request was already used';
const MAX_ATTEMPTS = 4;

interface AttestOptions {
  url?: string;
  key?: string;
  audience?: string;
  methods?: string;
  region?: string;
  stsEndpoint?: string;
  serverId?: string;
  quiet?: boolean;
}

/** A failure to report with exit 1: one line on stderr. */
class AttestFailure extends Error {}

/** The `port agent` command group (`attest` here; other agent-host commands attach to it). */
export function agentCommandGroup(program: Command): Command {
  return program.commands.find((c) => c.name() === 'agent') ?? program.command('agent').description('commands for a Buildkite agent host');
}

export function registerAgentCommand(program: Command): void {
  agentCommandGroup(program)
    .command('attest')
    .description("prove to Port which AWS instance and role this agent host is, and register its host key (run from the agent's environment or pre-bootstrap hook)")
    .option('--url <url>', "Port's public URL (default: $PORT_URL)")
    .option('--key <path>', 'the host key file, created 0600 if missing (default: $PORT_HOST_KEY, else ${XDG_STATE_HOME:-$HOME/.local/state}/port/host-key.jwk)')
    .option('--audience <aud>', "audience of the Buildkite token, Port's buildkite.audience (default: $PORT_AUDIENCE, else --url)")
    .option('--methods <list>', 'aws_iam, aws_iid or both, comma-separated (default: every method this host can produce)')
    .option('--region <region>', 'AWS region of the STS endpoint to sign for (default: the endpoint\'s; us-east-1 for the global one)')
    .option('--sts-endpoint <url>', "Port's attestation.aws_iam.sts_endpoint (default: $AWS_ENDPOINT_URL_STS, else STS in --region, else https://sts.amazonaws.com)")
    .option('--server-id <id>', "Port's attestation.aws_iam.server_id (default: $PORT_SERVER_ID, else --url)")
    .option('--quiet', 'print nothing when attested')
    .action(async (opts: AttestOptions) => {
      try {
        const line = await attest(opts);
        if (!opts.quiet) process.stdout.write(`${line}\n`);
      } catch (err) {
        if (err instanceof UsageError) {
          process.stderr.write(`port: agent attest: ${err.message}\n`);
          process.exitCode = EXIT_USAGE;
          return;
        }
        process.stderr.write(`port: agent attest: ${oneLine((err as Error).message)}\n`);
        process.exitCode = EXIT_FAILED;
      }
    });
}

async function attest(opts: AttestOptions): Promise<string> {
  const env = process.env;
  const url = portUrl(opts.url ?? env.PORT_URL);
  if (!env.BUILDKITE_JOB_ID || !env.BUILDKITE_AGENT_ACCESS_TOKEN) {
    throw new UsageError("not inside a Buildkite job (BUILDKITE_JOB_ID and BUILDKITE_AGENT_ACCESS_TOKEN are unset); run it from the agent's environment or pre-bootstrap hook");
  }
  const wanted = parseMethods(opts.methods);
  const keyPath = hostKeyPath(opts.key, env);
  refuseKeyInBuildDirs(keyPath, env);
  const key = await loadOrCreateHostKey(keyPath);

  let iid: InstanceIdentityProof | undefined;
  if (wanted === undefined || wanted.includes('aws_iid')) iid = await identityDocument(wanted !== undefined);
  const credentials = wanted === undefined || wanted.includes('aws_iam') ? await instanceRoleCredentials(wanted !== undefined) : undefined;
  if (iid === undefined && credentials === undefined) {
    throw new AttestFailure('this host can produce no attestation: the instance metadata service does not answer and the AWS credential chain has no credentials (is this an EC2 instance with an instance profile?)');
  }
  if (!env.BUILDKITE_AGENT_JOB_API_SOCKET) {
    // pre-bootstrap runs before the job's Job API exists, and `oidc request-token` redacts
    // through it (agent v3.104.0 and later) unless told not to: port never prints the
    // token, and this hook's output goes to the agent's log, not the job's. The variable,
    // not the flag, so older agents (which don't know it) are unaffected.
    process.env.BUILDKITE_AGENT_OIDC_REQUEST_TOKEN_SKIP_TOKEN_REDACTION = 'true';
  }
  const target = `${url}${ATTEST_PATH}`;
  let answer: Record<string, unknown> | undefined;
  for (let attempt = 1; ; attempt++) {
    const body: Record<string, unknown> = {};
    if (iid) body.aws_iid = { document: iid.document, signature: iid.signature };
    if (credentials) body.aws_iam = signedCallerIdentity(credentials, opts, url, iid?.region);
    // Asked last: the token is short-lived and single use.
    body.buildkite_token = await requestAgentToken(opts.audience ?? (env.PORT_AUDIENCE || url), PORT_CLAIMS);
    const res = await request(target, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json', dpop: await createProof(key, { method: 'POST', url: target }) },
      body: JSON.stringify(body),
      headersTimeout: 30_000,
      bodyTimeout: 30_000,
    });
    answer = parseJsonObject(await res.body.text());
    if (res.statusCode === 200 && answer !== undefined) break;
    // SigV4 is deterministic to the second: agents of one host attesting in the same second
    // sign the same request, which Port accepts once. A later second signs another.
    if (attempt < MAX_ATTEMPTS && res.statusCode === 400 && str(answer?.error_description)?.startsWith(SIGNED_REQUEST_REUSED)) {
      await new Promise((r) => setTimeout(r, 1000 + Math.floor(Math.random() * 1500)));
      continue;
    }
    throw new AttestFailure(`refused by Port (${res.statusCode} ${str(answer?.error) ?? 'error'}): ${str(answer?.error_description) ?? 'Port answered no description'}`);
  }
  await markHostBound(keyPath, answer.host_bound === true);
  const methods = Array.isArray(answer.attestation) ? answer.attestation.filter((m): m is string => typeof m === 'string') : [];
  const ignored = Array.isArray(answer.ignored) ? answer.ignored.filter((m): m is string => typeof m === 'string') : [];
  return (
    `port: agent ${str(answer.agent_id) ?? '?'} attested for pool ${str(answer.pool) ?? '?'} with ${methods.join(', ') || 'nothing'} until ${str(answer.expires_at) ?? '?'}` +
    `${answer.host_bound === true ? `; Port tokens of its jobs are bound to host key ${key.jkt}` : ''}` +
    `${ignored.length > 0 ? ` (Port does not verify ${ignored.join(', ')}; not recorded)` : ''}`
  );
}

/** `https://…`, or `http://` on the loopback interface only: the Buildkite token is a bearer credential. */
function portUrl(raw: string | undefined): string {
  if (!raw) throw new UsageError("give Port's URL with --url or $PORT_URL");
  const url = raw.replace(/\/+$/, '');
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new UsageError(`${url.slice(0, 100)} is not a URL`);
  }
  const loopback = u.hostname === '127.0.0.1' || u.hostname === 'localhost' || u.hostname === '[::1]';
  if (u.search !== '' || u.hash !== '' || u.username !== '' || u.password !== '' || !(u.protocol === 'https:' || (u.protocol === 'http:' && loopback))) {
    throw new UsageError(`--url must be Port's https:// URL without query or user info (http:// only on 127.0.0.1, localhost or [::1]): ${url.slice(0, 100)}`);
  }
  return url;
}

/** The methods asked for, or undefined for "every method this host can produce". */
function parseMethods(list: string | undefined): Method[] | undefined {
  if (list === undefined) return undefined;
  const names = list.split(',').map((m) => m.trim()).filter((m) => m !== '');
  if (names.length === 0) throw new UsageError('--methods names no method; give aws_iam, aws_iid or both');
  for (const m of names) {
    if (!(METHODS as readonly string[]).includes(m)) throw new UsageError(`--methods: "${m.slice(0, 32)}" is not a method; give aws_iam, aws_iid or both`);
  }
  return [...new Set(names)] as Method[];
}

/** IMDSv2's identity document; undefined when IMDS doesn't answer and the method wasn't asked for by name. */
async function identityDocument(required: boolean): Promise<InstanceIdentityProof | undefined> {
  const endpoint = imdsEndpoint();
  if (endpoint === undefined) {
    if (required) throw new AttestFailure('aws_iid needs the instance metadata service, and AWS_EC2_METADATA_DISABLED is true');
    return undefined;
  }
  try {
    return await instanceIdentity(endpoint);
  } catch (err) {
    if (err instanceof ImdsError && err.unreachable && !required) return undefined;
    throw new AttestFailure(`aws_iid: ${(err as Error).message}`);
  }
}

interface Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

/**
 * The standard AWS credential chain (environment, shared config, container, instance
 * metadata — as AWS SDKs resolve it); undefined when it has none and aws_iam wasn't asked
 * for by name. Loaded on demand: the SDK is large, and only this command needs it here.
 */
async function instanceRoleCredentials(required: boolean): Promise<Credentials | undefined> {
  // The SDK warns on Node 20 about its future releases; a hook's log gets nothing from that.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const { STSClient } = await import('@aws-sdk/client-sts');
  const client = new STSClient({ region: 'us-east-1' });
  try {
    const c = await client.config.credentials();
    return { accessKeyId: c.accessKeyId, secretAccessKey: c.secretAccessKey, ...(c.sessionToken ? { sessionToken: c.sessionToken } : {}) };
  } catch (err) {
    if (!required) return undefined;
    throw new AttestFailure(`aws_iam: no AWS credentials from the credential chain (${oneLine((err as Error).message).slice(0, 200)})`);
  } finally {
    client.destroy();
  }
}

/**
 * sts:GetCallerIdentity signed for Port's STS endpoint and server id — they must be
 * exactly Port's `attestation.aws_iam.sts_endpoint` and `server_id` (Port names them when
 * they are not). SigV4 signs for the endpoint's region (`us-east-1` for the global one).
 */
function signedCallerIdentity(credentials: Credentials, opts: AttestOptions, url: string, documentRegion: string | undefined): SignedCallerIdentityRequest {
  const env = process.env;
  const stsEndpoint = opts.stsEndpoint ?? (env.AWS_ENDPOINT_URL_STS || (opts.region ? `https://sts.${opts.region}.amazonaws.com` : 'https://sts.amazonaws.com'));
  let host: string;
  try {
    host = new URL(stsEndpoint).hostname;
  } catch {
    throw new UsageError(`--sts-endpoint ${stsEndpoint.slice(0, 100)} is not a URL`);
  }
  const regional = /^sts\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?$/.exec(host)?.[1];
  const region = host === 'sts.amazonaws.com' ? 'us-east-1' : (regional ?? opts.region ?? (env.AWS_REGION || env.AWS_DEFAULT_REGION || documentRegion || 'us-east-1'));
  try {
    return signCallerIdentityRequest({ credentials, region, stsEndpoint, serverId: opts.serverId ?? (env.PORT_SERVER_ID || url) });
  } catch (err) {
    throw new UsageError(`cannot sign sts:GetCallerIdentity: ${(err as Error).message}`);
  }
}


function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v.replace(/[\x00-\x1f\x7f]/g, ' ').slice(0, 500) : undefined;
}

function oneLine(s: string): string {
  return s.replace(/\s+/g, ' ').trim();
}

/**
 * `<key>.host-bound` beside the host key says Port answered that this agent's pool binds
 * tokens to it; the plugin makes DPoP-bound exchanges only then. Elsewhere a bound token
 * would break what sends `PORT_TOKEN` as a Bearer or Basic credential (git, npm, curl).
 */
async function markHostBound(keyPath: string, hostBound: boolean): Promise<void> {
  const marker = `${keyPath}.host-bound`;
  if (hostBound) await writeFile(marker, 'true\n', { mode: 0o600 });
  else await rm(marker, { force: true });
}
