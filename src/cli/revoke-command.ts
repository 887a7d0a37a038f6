import type { Command } from 'commander';
import { decodeJwt } from 'jose';
import { request } from 'undici';
import { REVOCATION_SCOPES, type RevocationScope } from '../revocation/revocation-list.js';
import type { LiftResult, RevocationResult } from '../revocation/revocation-service.js';
import { EXPIRES_IN_RULE, normaliseId, revocationLifetime } from '../revocation/revocation-target.js';
import { configuredAdminToken, portUrl } from './admin-target.js';
import { loadConfigForReading } from './read-config.js';
import { EXIT_FAILED, EXIT_USAGE } from './exit-codes.js';
import { UsageError } from './usage-error.js';

interface RevokeOptions {
  reason?: string;
  for?: string;
  lift?: boolean;
  config?: string;
  url?: string;
  json?: boolean;
}


/**
 * `port revoke <scope> <id> [--for DURATION]`: `POST /v1/revocations` with the admin token
 * (`server.admin_token` from -c, else $PORT_ADMIN_TOKEN); `--lift` ends a revocation early
 * (`DELETE /v1/revocations`). `port revoke token <Port token | ->` sends the token's jti
 * through the admin API; without an admin token it uses RFC 7009 `/oauth/revoke`, where
 * holding the token is the authority (and the answer says nothing more).
 */
export function registerRevokeCommand(program: Command): void {
  program
    .command('revoke')
    .description('revoke Port tokens by token, job, build, user, agent or pool')
    .argument('<scope>', REVOCATION_SCOPES.join('|'))
    .argument('<id>', 'token: a Port token (or - to read it from stdin) or its jti; job/agent: UUID; build: org/pipeline/number; user: e-mail; pool: cluster/queue')
    .option('--reason <text>', 'why (recorded in the decision log)')
    .option('--for <duration>', 'how long the revocation lasts, e.g. 30m, 24h, 7d (default: token/job/build as long as their tokens can live; user/agent/pool 24h)')
    .option('--lift', 'lift the revocation of <scope> <id> instead (admin only)')
    .option('-c, --config <file>', "Port's config: its listen address and server.admin_token")
    .option('--url <url>', "Port base URL (default: $PORT_URL, else the config's listen address)")
    .option('--json', 'print the result as JSON')
    .action(async (scopeArg: string, idArg: string, opts: RevokeOptions) => {
      let plan: Plan;
      try {
        plan = await planFor(scopeArg, idArg, opts);
      } catch (err) {
        process.stderr.write(`port: revoke: ${(err as Error).message}\n`);
        process.exitCode = EXIT_USAGE;
        return;
      }
      try {
        if (plan.kind === 'rfc7009') {
          const res = await request(`${plan.url}/oauth/revoke`, {
            method: 'POST',
            headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
            body: new URLSearchParams({ token: plan.token }).toString(),
            headersTimeout: 30_000,
            bodyTimeout: 30_000,
          });
          const body = (await res.body.json().catch(() => ({}))) as Record<string, unknown>;
          if (res.statusCode !== 200) return refused(res.statusCode, body);
          process.stdout.write(
            opts.json
              ? `${JSON.stringify({ scope: 'token', via: 'rfc7009' })}\n`
              : 'revoked the token (RFC 7009 /oauth/revoke; no admin token, so no details)\n',
          );
          return;
        }
        const res = await request(`${plan.url}/v1/revocations`, {
          method: opts.lift ? 'DELETE' : 'POST',
          headers: { authorization: `Bearer ${plan.adminToken}`, 'content-type': 'application/json', accept: 'application/json' },
          body: JSON.stringify({
            scope: plan.scope,
            id: plan.id,
            ...(opts.reason !== undefined ? { reason: opts.reason } : {}),
            ...(plan.expiresIn !== undefined ? { expires_in: plan.expiresIn } : {}),
          }),
          headersTimeout: 60_000,
          bodyTimeout: 60_000,
        });
        const body = (await res.body.json().catch(() => ({}))) as Record<string, unknown>;
        if (res.statusCode !== 200) return refused(res.statusCode, body);
        if (opts.json) process.stdout.write(`${JSON.stringify(body, null, 2)}\n`);
        else process.stdout.write(opts.lift ? describeLift(body as unknown as LiftResult) : describeRevocation(body as unknown as RevocationResult));
      } catch (err) {
        process.stderr.write(`port: revoke: ${(err as Error).message}\n`);
        process.exitCode = EXIT_FAILED;
      }
    });
}

type Plan = { kind: 'admin'; url: string; adminToken: string; scope: RevocationScope; id: string; expiresIn?: number } | { kind: 'rfc7009'; url: string; token: string };

async function planFor(scopeArg: string, idArg: string, opts: RevokeOptions): Promise<Plan> {
  if (!(REVOCATION_SCOPES as readonly string[]).includes(scopeArg)) throw new UsageError(`unknown scope "${scopeArg.slice(0, 40)}"; use one of ${REVOCATION_SCOPES.join(', ')}`);
  const scope = scopeArg as RevocationScope;
  if (opts.lift && opts.for !== undefined) throw new UsageError('--for sets how long a new revocation lasts; a lift takes none');
  const expiresIn = opts.for === undefined ? undefined : revocationLifetime(opts.for);
  if (opts.for !== undefined && expiresIn === undefined) throw new UsageError(`--for must be ${EXPIRES_IN_RULE}`);
  const config = opts.config === undefined ? undefined : loadConfigForReading(opts.config);
  const url = portUrl(opts.url, config);
  const adminToken = configuredAdminToken(config);

  let id = idArg;
  if (scope === 'token') {
    const presented = idArg === '-' ? await readStdin() : idArg;
    if (!presented) throw new UsageError('no token: give a Port token, its jti, or - and the token on stdin');
    if (presented.includes('.')) {
      if (adminToken === undefined && !opts.lift && expiresIn === undefined) return { kind: 'rfc7009', url, token: presented };
      let jti: unknown;
      try {
        jti = decodeJwt(presented).jti;
      } catch {
        throw new UsageError('the token is not a JWT (a Port token is)');
      }
      if (typeof jti !== 'string') throw new UsageError('the token has no jti claim; it is not a Port token');
      id = jti;
    } else {
      id = presented;
    }
  }
  if (adminToken === undefined) {
    throw new UsageError(`no admin token${opts.lift ? ' (lifting needs it)' : expiresIn !== undefined ? ' (--for needs it)' : ''}: -c a config with server.admin_token, or set $PORT_ADMIN_TOKEN`);
  }
  try {
    id = normaliseId(scope, id);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  return { kind: 'admin', url, adminToken, scope, id, ...(expiresIn !== undefined ? { expiresIn } : {}) };
}

function refused(status: number, body: Record<string, unknown>): void {
  process.stderr.write(`port: revoke: refused (${status} ${String(body.error ?? 'error')}): ${String(body.error_description ?? 'no description')}\n`);
  process.exitCode = EXIT_FAILED;
}

/** The result of `port revoke` in words, one fact a line. */
export function describeRevocation(r: RevocationResult): string {
  const lines = [
    `revoked ${r.scope} ${r.id} at ${r.revoked_at}, in force ${r.expires_at === null ? 'until lifted' : `until ${r.expires_at}`}`,
    `  reason: ${r.reason}`,
    `  approval requests closed: ${r.approvals_closed}${r.approvals_withdrawn ? `; approvals withdrawn: ${r.approvals_withdrawn}` : ''}`,
    `  approver sessions ended: ${r.sessions_ended}`,
    `  credentials stopped at once: ${r.credentials.recallable} (relay access stops at once too)`,
  ];
  const of = (type: string) => r.credentials.not_recallable.filter((c) => c.type === type);
  const aws = of('aws_role');
  if (aws.length > 0) {
    lines.push(`  AWS sessions Port can't recall (not renewed; valid until they expire):`);
    // One line per session: a job that asked again was handed the same cached session, and
    // each release is listed in the JSON, but it is one session to wait out.
    const sessions = new Map<string, number>();
    for (const c of aws) {
      const line = `    - ${c.credential}${c.session_name ? ` (session ${c.session_name})` : ''}, job ${c.job_id}, expires ${c.expires_at}`;
      sessions.set(line, (sessions.get(line) ?? 0) + 1);
    }
    for (const [line, n] of sessions) lines.push(n > 1 ? `${line} (released ${n} times)` : line);
  }
  const secrets = of('secret');
  if (secrets.length > 0) {
    lines.push(`  secrets the jobs hold (valid until rotated — rotate them):`);
    for (const c of secrets) lines.push(`    - ${c.credential}, version ${String(c.facts.version ?? '?')}, job ${c.job_id}: ${c.rotate_with ?? `port rotate ${c.credential}`}`);
  }
  const portTokens = of('port_token');
  if (portTokens.length > 0) {
    lines.push(`  port_tokens (valid at services that verify them offline until their exp):`);
    for (const c of portTokens) lines.push(`    - ${c.credential}, job ${c.job_id}, expires ${c.expires_at}`);
  }
  if (r.creator_coverage) lines.push(`  ${r.creator_coverage}`);
  lines.push(`  ${r.note}`);
  return `${lines.join('\n')}\n`;
}

function describeLift(r: LiftResult): string {
  const lines = [`lifted the ${r.scope} revocation of ${r.id} at ${r.lifted_at} (${r.lifted} record${r.lifted === 1 ? '' : 's'})`, `  reason: ${r.reason}`];
  if (r.still_revoked_by.length > 0) {
    const until = r.still_revoked_until === null ? 'until lifted' : `until ${r.still_revoked_until}`;
    const unliftable = r.still_revoked_by.some((o) => o === 'webhook' || o === 'job' || o === 'holder');
    lines.push(`  still revoked ${until}, by ${r.still_revoked_by.join(', ')}${unliftable ? " (a finished job's or a holder's own revocation is never lifted)" : ''}`);
  }
  return `${lines.join('\n')}\n`;
}

async function readStdin(): Promise<string> {
  if (process.stdin.isTTY) return '';
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8').trim();
}
