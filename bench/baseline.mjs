/**
 * Child of bench/exchange.mjs (pinned to the server's core): the raw crypto one token
 * exchange must do, in-process with jose and nothing else — verify one RS256 Buildkite
 * token (`jwtVerify` with a cached imported key, issuer/audience/alg checks) and sign one
 * ES256 Port token (`SignJWT`, `typ: at+jwt`) — with `concurrency` operations in flight.
 *
 * IPC: ← prepare {jwk, tokens, issuer, audience, portIssuer}  → prepared
 *      then, for bench/exchange.mjs (as many times as it likes, between its own runs of Port):
 *      ← measure {which: 'combined' | 'verify' | 'sign', concurrency, durationMs}
 *      → measured {result: {latencies, elapsedMs, cpuMs, threads}}
 *      or, for bench/instructions.mjs (one at a time, a count instead of a duration):
 *      ← run {count}                                            → ran
 */
import { randomUUID } from 'node:crypto';
import { generateKeyPair, importJWK, jwtVerify, SignJWT } from 'jose';
import { childMain, closedLoop, cpuMs, threadCpuMs } from './lib.mjs';

/** A closed loop of `op` for `durationMs`: its latencies (ms), elapsed time, and this process's CPU (all threads, and by thread). */
async function measure(concurrency, durationMs, op) {
  const cpu0 = cpuMs();
  const t0 = threadCpuMs();
  const { latencies, elapsedMs } = await closedLoop({ concurrency, durationMs, op });
  const cpu = cpuMs() - cpu0;
  const t1 = threadCpuMs();
  const threads = t0 && t1 ? { main: t1.main - t0.main, other: t1.other - t0.other } : undefined;
  return { latencies, elapsedMs, cpuMs: cpu, threads };
}

/** The operations: verify a Buildkite token, sign a Port token, and both (what one exchange must do). */
async function operations({ jwk, tokens, issuer, audience, portIssuer }) {
  // Cached keys, as Port holds them: imported once, reused for every operation.
  const rsaKey = await importJWK(jwk, 'RS256');
  const { privateKey: esKey } = await generateKeyPair('ES256');
  const kid = 'bench-es256';
  const options = { issuer, audience, algorithms: ['RS256'], requiredClaims: ['iss', 'aud', 'exp', 'iat', 'nbf'] };
  let i = 0;
  const nextToken = () => tokens[i++ % tokens.length];

  const verify = async () => (await jwtVerify(nextToken(), rsaKey, options)).payload;
  const sign = async (p) => {
    const iat = Math.floor(Date.now() / 1000);
    // The claims a Port token carries: the job's identity claims plus the JWT basics.
    const claims = {
      organization_slug: p.organization_slug,
      pipeline_slug: p.pipeline_slug,
      build_number: p.build_number,
      build_branch: p.build_branch,
      build_tag: p.build_tag ?? null,
      build_commit: p.build_commit,
      step_key: p.step_key ?? null,
      job_id: p.job_id,
      agent_id: p.agent_id,
      build_source: p.build_source,
      runner_environment: p.runner_environment,
      organization_id: p.organization_id,
      pipeline_id: p.pipeline_id,
      build_id: p.build_id,
      iss: portIssuer,
      sub: p.job_id,
      aud: portIssuer,
      iat,
      nbf: iat,
      exp: iat + 900,
      jti: randomUUID(),
      scope: 'deploy-token',
    };
    return new SignJWT(claims).setProtectedHeader({ alg: 'ES256', kid, typ: 'at+jwt' }).sign(esKey);
  };
  const sample = await verify();
  const combined = async () => {
    await sign(await verify());
  };
  return { verify, sign: () => sign(sample), combined };
}

let prepared;

childMain({
  async prepare(keys) {
    prepared = await operations(keys);
    process.send({ type: 'prepared' });
  },
  async measure({ which, concurrency, durationMs }) {
    const op = prepared[which];
    if (typeof op !== 'function') throw new Error(`measure: no operation "${which}"`);
    process.send({ type: 'measured', result: await measure(concurrency, durationMs, op) });
  },
  async run({ count }) {
    for (let i = 0; i < count; i++) await prepared.combined();
    process.send({ type: 'ran' });
  },
  close() {
    process.exit(0);
  },
});
