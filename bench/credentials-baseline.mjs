/**
 * Child of bench/credentials.mjs (pinned to the core Port ran on): the bare operation
 * behind each credential type, without Port — no HTTP server, bearer check, policy,
 * decision log or store:
 *
 *   file      readFileSync of the secret file, trailing newline dropped (what `file:` does)
 *   command   spawn `/bin/sh -c "<the same command>"` (own process group, stdout piped,
 *             stderr ignored, as Port's run-command does), stdout collected until close
 *   sign      one ES256 `SignJWT` of a port_token's claims (jose, WebCrypto key imported once)
 *   sts-web   sign a web identity token (same claims and tags claim) + AssumeRoleWithWebIdentity
 *             through @aws-sdk/client-sts against the STS simulator
 *   sts-keys  AssumeRole signed with an IAM user's keys, same tags, transitive keys and policy
 *
 * The STS calls carry the same RoleSessionName, DurationSeconds, tags and packed session
 * policy Port sends; each STSClient is made once and reused, as Port's AwsRoleProvider does.
 *
 * IPC: ← start {secretFile, command, claims, stsUrl, roles, user, policy, privateJwk, kid, tagKeys}
 *                                                      → ready
 *      ← run {target, concurrency, durationMs}        → result {ops, p50, p99, …, cpuMs, childrenMs, errors, firstError, rss}
 *      ← close
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { AssumeRoleCommand, AssumeRoleWithWebIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { generateKeyPair, importJWK, SignJWT } from 'jose';
import { BASELINE_ISSUER, childrenCpuMs, WEB_IDENTITY_AUDIENCE } from './credentials-setup.mjs';
import { childMain, closedLoop, cpuMs, summarize, threadCpuMs } from './lib.mjs';

let ops;

function runCommand(command) {
  return new Promise((resolve, reject) => {
    const child = spawn('/bin/sh', ['-c', command], { stdio: ['ignore', 'pipe', 'ignore'], detached: true });
    const chunks = [];
    child.stdout.on('data', (c) => chunks.push(c));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '')) : reject(new Error(`command exited ${code}`))));
  });
}

childMain({
  async start({ secretFile, command, claims, stsUrl, roles, user, policy, privateJwk, kid, tags, transitiveTagKeys }) {
    const { privateKey: portKey } = await generateKeyPair('ES256');
    const webKey = await importJWK(privateJwk, 'ES256');
    const sessionName = `bk-${claims.pipeline_slug}-${claims.build_number}-${claims.job_id}`.slice(0, 64);
    // 900 s: what Port asks for under a 15-minute Port token (sessionDuration caps it at the bearer's life).
    const common = { RoleSessionName: sessionName, DurationSeconds: 900, Policy: policy };
    const webClient = new STSClient({ region: 'us-east-1', endpoint: stsUrl, maxAttempts: 2 });
    const keysClient = new STSClient({ region: 'eu-west-1', endpoint: stsUrl, maxAttempts: 2, credentials: { accessKeyId: user.accessKeyId, secretAccessKey: user.secretAccessKey } });
    const subject = () => {
      const ref = claims.build_tag ? `refs/tags/${claims.build_tag}` : `refs/heads/${claims.build_branch}`;
      return `organization:${claims.organization_slug}:pipeline:${claims.pipeline_slug}:ref:${ref}:commit:${claims.build_commit}:step:${claims.step_key ?? ''}`;
    };
    const webIdentityToken = () => {
      const iat = Math.floor(Date.now() / 1000);
      return new SignJWT({ ...claims, 'https://aws.amazon.com/tags': { principal_tags: Object.fromEntries(tags.map((t) => [t.Key, [t.Value]])), transitive_tag_keys: transitiveTagKeys } })
        .setProtectedHeader({ alg: 'ES256', kid, typ: 'JWT' })
        .setIssuer(BASELINE_ISSUER)
        .setSubject(subject())
        .setAudience(WEB_IDENTITY_AUDIENCE)
        .setIssuedAt(iat)
        .setNotBefore(iat)
        .setExpirationTime(iat + 300)
        .setJti(randomUUID())
        .sign(webKey);
    };
    const check = (out) => {
      if (!out.Credentials?.AccessKeyId) throw new Error('STS answered without credentials');
    };
    ops = {
      file: async () => {
        if (readFileSync(secretFile, 'utf8').replace(/\r?\n$/, '') === '') throw new Error('empty secret');
      },
      command: async () => {
        if ((await runCommand(command)) === '') throw new Error('empty output');
      },
      sign: async () => {
        const iat = Math.floor(Date.now() / 1000);
        await new SignJWT({ ...claims, iss: 'https://port.acme.test', sub: claims.job_id, aud: 'https://svc.acme.test', iat, nbf: iat, exp: iat + 900, jti: randomUUID() })
          .setProtectedHeader({ alg: 'ES256', kid: 'bench', typ: 'at+jwt' })
          .sign(portKey);
      },
      'sts-web': async () => {
        check(await webClient.send(new AssumeRoleWithWebIdentityCommand({ ...common, RoleArn: roles.web, WebIdentityToken: await webIdentityToken() })));
      },
      'sts-keys': async () => {
        check(await keysClient.send(new AssumeRoleCommand({ ...common, RoleArn: roles.keys, Tags: tags, TransitiveTagKeys: transitiveTagKeys })));
      },
    };
    // One of each first: a broken setup fails loudly.
    for (const op of Object.values(ops)) await op();
    process.send({ type: 'ready' });
  },
  async run({ target, concurrency, durationMs }) {
    const op = ops[target];
    if (!op) throw new Error(`unknown baseline ${target}`);
    let errors = 0;
    let firstError;
    const timedOp = async () => {
      try {
        await op();
        return true;
      } catch (err) {
        errors++;
        firstError ??= String(err?.message ?? err);
        return 'error';
      }
    };
    const c0 = cpuMs();
    const k0 = childrenCpuMs();
    const t0 = threadCpuMs();
    const { latencies, elapsedMs } = await closedLoop({ concurrency, durationMs, op: timedOp });
    const c1 = cpuMs();
    const k1 = childrenCpuMs();
    const t1 = threadCpuMs();
    process.send({
      type: 'result',
      ...summarize(latencies, elapsedMs, {
        cpuMs: c1 - c0,
        childrenMs: k1 - k0,
        threads: t0 && t1 ? { main: t1.main - t0.main, other: t1.other - t0.other } : undefined,
        errors,
        firstError,
        rss: process.memoryUsage.rss(),
      }),
    });
  },
  close() {
    process.exit(0);
  },
});
