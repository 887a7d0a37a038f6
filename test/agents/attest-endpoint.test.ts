import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lineage } from '../../src/audit/lineage.js';
import { lineageToText } from '../../src/audit/lineage-format.js';
import { verifyAuditLog } from '../../src/audit/verify.js';
import { signCallerIdentityRequest, type SignedCallerIdentityRequest } from '../../src/agents/attestation/aws-iam.js';
import { createProof, loadOrCreateHostKey, type HostKey } from '../../src/dpop/host-key.js';
import { createTestCertificateAuthority, ImdsSimulator, type TestCertificateAuthority } from '../../src/sim/aws-imds/index.js';
import { StsSimulator } from '../../src/sim/aws-sts/index.js';
import type { SimJobInit } from '../../src/sim/index.js';
import { startHarness, type Harness } from '../helpers/port-harness.js';

/**
 * `POST /v1/agents/attest` over HTTP: the real server, the Buildkite simulator's tokens,
 * the STS simulator behind aws_iam and the IMDS simulator's identity documents (signed by a
 * test certificate authority Port trusts as AWS's).
 */
const PUBLIC_URL = 'https://port.acme.test';
const ATTEST = `${PUBLIC_URL}/v1/agents/attest`;
const ROLE = 'buildkite-deploy-agent';
const OTHER_ROLE = 'some-other-role';

let h: Harness;
let sts: StsSimulator;
let ca: TestCertificateAuthority;
let dir: string;
const instances: ImdsSimulator[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'port-attest-'));
  sts = await StsSimulator.start({ roles: [{ name: ROLE, trust: { ec2: true } }, { name: OTHER_ROLE, trust: { ec2: true } }] });
  ca = createTestCertificateAuthority({ modulusLength: 1024 });
  writeFileSync(join(dir, 'ec2-identity.pem'), ca.certificatePem);
  const account = sts.accountId;
  h = await startHarness({
    config: {
      pools: {
        'linux/deploy': { attestation: ['aws_iam'], aws: { accounts: [account], roles: [`arn:aws:iam::${account}:role/buildkite-deploy-*`] } },
        'linux/elsewhere': { attestation: ['aws_iam'], aws: { accounts: ['999999999999'] } },
        'linux/iid': { attestation: ['aws_iid'], aws: { accounts: [account], regions: ['eu-west-1'] } },
        'linux/bound': { attestation: ['aws_iam'], host_bound: true, aws: { accounts: [account] } },
        'linux/both': { attestation: ['aws_iam', 'aws_iid'], aws: { accounts: [account] } },
        'linux/plain': { attestation: ['none'] },
      },
      attestation: {
        aws_iam: { sts_endpoint: sts.url },
        aws_iid: { certificates: { default: `file:${join(dir, 'ec2-identity.pem')}` }, max_age: '1h' },
      },
    },
  });
});

afterAll(async () => {
  await Promise.all(instances.map((i) => i.close()));
  await h?.close();
  await sts?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function instance(o: { role?: string; pendingTime?: Date; region?: string } = {}): Promise<ImdsSimulator> {
  const i = await ImdsSimulator.start({ instance: { region: o.region ?? 'eu-west-1', ...(o.pendingTime ? { pendingTime: o.pendingTime } : {}) }, ca, sts, roleName: o.role ?? ROLE });
  instances.push(i);
  return i;
}

let keys = 0;
const newKey = (): Promise<HostKey> => loadOrCreateHostKey(join(dir, 'keys', `host-${++keys}.jwk`));

/** A running job of `queue` on its own agent, and a Buildkite token of it for Port with the pool claims. */
async function job(queue: string, init: SimJobInit = {}): Promise<{ agentId: string; token: () => Promise<string> }> {
  const j = h.sim.createJob({ clusterName: 'linux', queueKey: queue, ...init });
  return { agentId: j.agentId, token: () => h.sim.mintToken(j, { audience: h.audience, claims: ['cluster_name', 'queue_key'] }) };
}

let signatures = 0;
/** Fixed once: counting back from a clock that moves on could date two requests the same second. */
const SIGNING_BASE = Date.now();
/**
 * A signed sts:GetCallerIdentity from the instance's role credentials. SigV4 is
 * deterministic to the second (X-Amz-Date), so each is dated a second apart from the
 * last: two equal ones are one request, which Port accepts once.
 */
function signed(i: ImdsSimulator): SignedCallerIdentityRequest {
  const s = i.credentials();
  return signCallerIdentityRequest({
    credentials: { accessKeyId: s.accessKeyId, secretAccessKey: s.secretAccessKey, sessionToken: s.sessionToken },
    region: 'us-east-1',
    stsEndpoint: sts.url,
    serverId: PUBLIC_URL,
    now: new Date(SIGNING_BASE - (++signatures % 200) * 1000),
  });
}

async function attest(body: unknown, o: { key?: HostKey; headers?: Record<string, string> } = {}): Promise<{ status: number; body: any; headers: Headers }> {
  const headers: Record<string, string> = { 'content-type': 'application/json', ...o.headers };
  if (o.key) headers.dpop = await createProof(o.key, { method: 'POST', url: ATTEST });
  const res = await fetch(`${h.url}/v1/agents/attest`, { method: 'POST', headers, body: typeof body === 'string' ? body : JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined, headers: res.headers };
}

const recorded = (agentId: string) => h.port.store.attestations.get(agentId, Date.now());

async function attestEntries(agentId?: string) {
  const entries = (await h.port.store.decisions.read(0, 100_000)).map((e) => e.record).filter((r) => r.action === 'attest');
  return agentId === undefined ? entries : entries.filter((r) => r.principal === `Port::Agent::${JSON.stringify(agentId)}`);
}

/** Refused, with nothing recorded for the agent and the refusal (only) in the decision log. */
async function expectRefused(r: { status: number; body: any; headers: Headers }, agentId: string, status: number, error: string, check: string, description?: RegExp) {
  expect(r.status, JSON.stringify(r.body)).toBe(status);
  expect(r.body.error).toBe(error);
  if (description) expect(r.body.error_description).toMatch(description);
  expect(r.headers.get('cache-control')).toBe('no-store');
  expect(await recorded(agentId)).toBeUndefined();
  const entries = await attestEntries(agentId);
  expect(entries.at(-1)).toMatchObject({ decision: 'deny', action: 'attest', reason: r.body.error_description, context: { check } });
  expect(entries.every((e) => e.decision === 'deny')).toBe(true);
}

describe('POST /v1/agents/attest', () => {
  it('aws_iam: records the instance role for the agent, and the job then exchanges its token', async () => {
    const i = await instance();
    const j = await job('deploy');
    // Before attesting, the pool's rule refuses the exchange and says what to run.
    const before = await h.exchange(await j.token());
    expect(before.status, JSON.stringify(before.body)).toBe(403);
    expect(before.body).toMatchObject({ error: 'access_denied' });
    expect(before.body.error_description).toContain('port agent attest');

    const r = await attest({ buildkite_token: await j.token(), aws_iam: signed(i) });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    expect(r.headers.get('cache-control')).toBe('no-store');
    expect(r.body).toMatchObject({ agent_id: j.agentId, pool: 'linux/deploy', attestation: ['aws_iam'], host_bound: false });
    expect(r.body.jkt).toBeUndefined();
    const expires = Date.parse(r.body.expires_at);
    expect(expires).toBeGreaterThan(Date.now() + 86_400_000 - 60_000);
    expect(await recorded(j.agentId)).toMatchObject({
      agentId: j.agentId,
      pool: 'linux/deploy',
      methods: ['aws_iam'],
      account: sts.accountId,
      iamRole: `arn:aws:iam::${sts.accountId}:role/${ROLE}`,
      expiresAt: expires,
    });

    const after = await h.exchange(await j.token());
    expect(after.status, JSON.stringify(after.body)).toBe(200);
    expect(after.body.access_token).toEqual(expect.any(String));
  });

  it('refuses a role the pool does not allow, and an account it does not allow', async () => {
    const wrongRole = await job('deploy');
    await expectRefused(
      await attest({ buildkite_token: await wrongRole.token(), aws_iam: signed(await instance({ role: OTHER_ROLE })) }),
      wrongRole.agentId,
      403,
      'attestation_failed',
      'role_not_allowed',
      new RegExp(`instance role arn:aws:iam::${sts.accountId}:role/${OTHER_ROLE} is not one pool linux/deploy allows`),
    );
    const wrongAccount = await job('elsewhere');
    await expectRefused(
      await attest({ buildkite_token: await wrongAccount.token(), aws_iam: signed(await instance()) }),
      wrongAccount.agentId,
      403,
      'attestation_failed',
      'account_not_allowed',
      new RegExp(`AWS account ${sts.accountId}, which pool linux/elsewhere does not allow`),
    );
  });

  it('accepts a Buildkite token once: a replayed token is refused, and so is a replayed signed request', async () => {
    const i = await instance();
    const j = await job('deploy');
    const token = await j.token();
    expect((await attest({ buildkite_token: token, aws_iam: signed(i) })).status).toBe(200);
    const again = await attest({ buildkite_token: token, aws_iam: signed(i) });
    expect(again.status).toBe(400);
    expect(again.body).toMatchObject({ error: 'invalid_grant' });
    expect(again.body.error_description).toMatch(/already used/);
    expect((await attestEntries(j.agentId)).at(-1)).toMatchObject({ decision: 'deny', context: { check: 'replayed' } });

    // A token used at /v1/agents/attest is spent for the exchange too (one use at Port).
    expect((await h.exchange(token)).body.error_description).toMatch(/already/);

    const other = await job('deploy');
    const request = signed(i);
    expect((await attest({ buildkite_token: await other.token(), aws_iam: request })).status).toBe(200);
    const copied = await job('deploy');
    await expectRefused(await attest({ buildkite_token: await copied.token(), aws_iam: request }), copied.agentId, 400, 'invalid_attestation', 'aws_iam_replayed', /already used/);
  });

  it('aws_iid: binds the instance to the first host key; a copied document with another key is refused', async () => {
    const i = await instance();
    const first = await job('iid');
    const hostKey = await newKey();
    const ok = await attest({ buildkite_token: await first.token(), aws_iid: { document: i.document, signature: i.signature } }, { key: hostKey });
    expect(ok.status, JSON.stringify(ok.body)).toBe(200);
    expect(ok.body).toMatchObject({ pool: 'linux/iid', attestation: ['aws_iid'], jkt: hostKey.jkt });
    expect(await recorded(first.agentId)).toMatchObject({ methods: ['aws_iid'], instanceId: i.instanceId, region: 'eu-west-1', account: sts.accountId, jkt: hostKey.jkt });

    // The document and signature copied elsewhere (anyone on the instance can read them), with the copier's key.
    const elsewhere = await job('iid');
    await expectRefused(
      await attest({ buildkite_token: await elsewhere.token(), aws_iid: { document: i.document, signature: i.signature } }, { key: await newKey() }),
      elsewhere.agentId,
      403,
      'attestation_failed',
      'instance_key_mismatch',
      new RegExp(`Instance ${i.instanceId} registered another host key`),
    );
    // The host itself attests again (another agent process, a later day) with its key.
    const later = await job('iid');
    expect((await attest({ buildkite_token: await later.token(), aws_iid: { document: i.document, signature: i.signature } }, { key: hostKey })).status).toBe(200);
  });

  it('aws_iid: an instance first attested after attestation.aws_iid.max_age of its launch is refused, then and later', async () => {
    const old = await instance({ pendingTime: new Date(Date.now() - 2 * 3600_000) });
    const j = await job('iid');
    const key = await newKey();
    await expectRefused(
      await attest({ buildkite_token: await j.token(), aws_iid: { document: old.document, signature: old.signature } }, { key }),
      j.agentId,
      403,
      'attestation_failed',
      'iid_first_use_too_late',
      /more than 3600 s after it launched/,
    );
    // Not a window that reopens for whoever asks next, with any key.
    const next = await job('iid');
    await expectRefused(
      await attest({ buildkite_token: await next.token(), aws_iid: { document: old.document, signature: old.signature } }, { key }),
      next.agentId,
      403,
      'attestation_failed',
      'iid_first_use_too_late',
    );
  });

  it('aws_iid: needs a DPoP proof (the host key), a document AWS signed, and a region the pool allows', async () => {
    const i = await instance();
    const noProof = await job('iid');
    await expectRefused(
      await attest({ buildkite_token: await noProof.token(), aws_iid: { document: i.document, signature: i.signature } }),
      noProof.agentId,
      400,
      'invalid_attestation',
      'dpop_required',
      /DPoP proof made with the host key is required/,
    );
    const forged = await job('iid');
    const document = i.document.replace(/"instanceId" : "i-[0-9a-f]+"/, '"instanceId" : "i-0123456789abcdef0"');
    await expectRefused(await attest({ buildkite_token: await forged.token(), aws_iid: { document, signature: i.signature } }, { key: await newKey() }), forged.agentId, 403, 'attestation_failed', 'aws_iid');
    const us = await instance({ region: 'us-east-2' });
    const wrongRegion = await job('iid');
    await expectRefused(
      await attest({ buildkite_token: await wrongRegion.token(), aws_iid: { document: us.document, signature: us.signature } }, { key: await newKey() }),
      wrongRegion.agentId,
      403,
      'attestation_failed',
      'region_not_allowed',
    );
  });

  it('both methods: one machine — the role session must be the instance the document names', async () => {
    const a = await instance();
    const b = await instance();
    const mixed = await job('both');
    await expectRefused(
      await attest({ buildkite_token: await mixed.token(), aws_iam: signed(a), aws_iid: { document: b.document, signature: b.signature } }, { key: await newKey() }),
      mixed.agentId,
      403,
      'attestation_failed',
      'session_not_instance',
    );
    const j = await job('both');
    const key = await newKey();
    const ok = await attest({ buildkite_token: await j.token(), aws_iam: signed(a), aws_iid: { document: a.document, signature: a.signature } }, { key });
    expect(ok.status, JSON.stringify(ok.body)).toBe(200);
    expect(ok.body.attestation).toEqual(['aws_iam', 'aws_iid']);
    expect(await recorded(j.agentId)).toMatchObject({ methods: ['aws_iam', 'aws_iid'], instanceId: a.instanceId, iamRole: `arn:aws:iam::${sts.accountId}:role/${ROLE}`, jkt: key.jkt });
  });

  it('a host-bound pool needs the DPoP proof, and records its key', async () => {
    const i = await instance();
    const j = await job('bound');
    await expectRefused(await attest({ buildkite_token: await j.token(), aws_iam: signed(i) }), j.agentId, 400, 'invalid_attestation', 'dpop_required', /host_bound/);
    const bad = await attest({ buildkite_token: await j.token(), aws_iam: signed(i) }, { headers: { dpop: 'not-a-proof' } });
    await expectRefused(bad, j.agentId, 400, 'invalid_dpop_proof', 'dpop_proof_malformed');

    const key = await newKey();
    const ok = await attest({ buildkite_token: await j.token(), aws_iam: signed(i) }, { key });
    expect(ok.status, JSON.stringify(ok.body)).toBe(200);
    expect(ok.body).toMatchObject({ host_bound: true, jkt: key.jkt });
    expect((await recorded(j.agentId))?.jkt).toBe(key.jkt);
  });

  it('refuses pools that are not configured or ask for no AWS attestation, and tokens without the pool claims', async () => {
    const i = await instance();
    const unconfigured = await job('nowhere');
    await expectRefused(await attest({ buildkite_token: await unconfigured.token(), aws_iam: signed(i) }), unconfigured.agentId, 403, 'attestation_failed', 'pool_not_configured', /linux\/nowhere has no pools: entry/);
    const plain = await job('plain');
    await expectRefused(await attest({ buildkite_token: await plain.token(), aws_iam: signed(i) }), plain.agentId, 403, 'attestation_failed', 'pool_not_attested', /requires no AWS attestation/);
    const missing = await job('iid');
    await expectRefused(await attest({ buildkite_token: await missing.token(), aws_iam: signed(i) }), missing.agentId, 400, 'invalid_attestation', 'method_missing', /requires aws_iid/);
    const j = h.sim.createJob({ clusterName: 'linux', queueKey: 'deploy' });
    const noClaims = await h.sim.mintToken(j, { audience: h.audience });
    await expectRefused(await attest({ buildkite_token: noClaims, aws_iam: signed(i) }), j.agentId, 403, 'access_denied', 'pool_claims_missing', /--claim cluster_name,queue_key/);
  });

  it('validates the request at the edge with a specific 400 (415 for another media type), before anything is logged', async () => {
    const before = (await attestEntries()).length;
    const token = await (await job('deploy')).token();
    const cases: [unknown, RegExp][] = [
      ['{not json', /not valid JSON/],
      [[], /must be a JSON object/],
      [{ aws_iam: {} }, /buildkite_token is missing/],
      [{ buildkite_token: token }, /carries no attestation/],
      [{ buildkite_token: token, aws_iid: { document: 'x', signature: 'y' }, extra: 1 }, /"extra", which Port does not accept/],
      [{ buildkite_token: token, aws_iid: { document: 'x' } }, /aws_iid\.signature is missing/],
      [{ buildkite_token: token, aws_iid: { document: 'x', signature: 'y', pkcs7: 'z' } }, /aws_iid has "pkcs7"/],
      [{ buildkite_token: token, aws_iam: { method: 'GET', url: 'u', headers: {}, body: 'b' } }, /aws_iam\.method must be "POST"/],
      [{ buildkite_token: token, aws_iam: { method: 'POST', url: 'u', headers: { a: 1 }, body: 'b' } }, /aws_iam\.headers\["a"\] must be a non-empty string/],
      [{ buildkite_token: 7, aws_iid: { document: 'x', signature: 'y' } }, /buildkite_token must be a non-empty string/],
    ];
    for (const [body, message] of cases) {
      const r = await attest(body);
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(r.body.error).toBe('invalid_attestation');
      expect(r.body.error_description).toMatch(message);
    }
    const form = await fetch(`${h.url}/v1/agents/attest`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'a=b' });
    expect(form.status).toBe(415);
    const big = await attest({ buildkite_token: token, aws_iid: { document: 'x'.repeat(70_000), signature: 'y' } });
    expect(big.status).toBe(400);
    expect(big.body.error_description).toMatch(/larger than/);
    expect((await attestEntries()).length).toBe(before);
  });

  it('a token that does not verify is refused and logged without a principal', async () => {
    const r = await attest({ buildkite_token: 'eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.', aws_iid: { document: 'x', signature: 'y' } });
    expect(r.status).toBe(400);
    expect(r.body.error).toBe('invalid_grant');
    const last = (await attestEntries()).at(-1)!;
    expect(last).toMatchObject({ principal: null, decision: 'deny', context: { check: 'alg_not_allowed' } });
  });

  it('logs every attempt as an attest decision on the Agent and Pool, without tokens, documents, signatures or signed requests', async () => {
    const i = await instance();
    const j = await job('both');
    const token = await j.token();
    const iam = signed(i);
    const key = await newKey();
    const r = await attest({ buildkite_token: token, aws_iam: iam, aws_iid: { document: i.document, signature: i.signature } }, { key });
    expect(r.status).toBe(200);
    const entry = (await attestEntries(j.agentId)).at(-1)!;
    expect(entry).toMatchObject({
      principal: `Port::Agent::"${j.agentId}"`,
      action: 'attest',
      resource: 'Port::Pool::"linux/both"',
      decision: 'allow',
      policies: [],
      context: {
        request_id: expect.any(String),
        job: { job_id: expect.any(String), agent_id: j.agentId, cluster_name: 'linux', queue_key: 'both' },
        subject_token: { jti_sha256: expect.stringMatching(/^[0-9a-f]{64}$/) },
        attestation: {
          pool: 'linux/both',
          required: ['aws_iam', 'aws_iid'],
          methods: ['aws_iam', 'aws_iid'],
          instance_id: i.instanceId,
          account: sts.accountId,
          region: 'eu-west-1',
          iam_role: `arn:aws:iam::${sts.accountId}:role/${ROLE}`,
          jkt: key.jkt,
          expires_at: r.body.expires_at,
        },
      },
    });
    expect(entry.reason).toBe(`Agent ${j.agentId} attested for pool linux/both with aws_iam and aws_iid.`);
    const everything = JSON.stringify(await attestEntries());
    const session = i.credentials();
    for (const secret of [token, token.split('.')[2]!, i.signature, i.document, iam.headers.Authorization ?? iam.headers.authorization ?? '', session.sessionToken, session.secretAccessKey, iam.body]) {
      expect(secret.length).toBeGreaterThan(10);
      expect(everything).not.toContain(secret);
    }
    expect(everything).not.toContain(i.signature.slice(0, 40));

    // The log with attest entries verifies, and the attesting job's lineage shows the entry.
    await h.port.log.flush();
    const keys = new Map((await h.port.store.keys.list()).map((k) => [k.kid, k.publicJwk]));
    const report = await verifyAuditLog(h.port.store, keys);
    expect(report.problems).toEqual([]);
    expect(report.ok).toBe(true);
    const entries = await h.port.store.decisions.read(0, 100_000);
    const jobId = (entry.context.job as { job_id: string }).job_id;
    expect(lineageToText(lineage(entries, { kind: 'job', id: jobId }))).toContain('attest Port::Pool::"linux/both"');
  });
});
