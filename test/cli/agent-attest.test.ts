import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadOrCreateHostKey } from '../../src/dpop/host-key.js';
import { createTestCertificateAuthority, ImdsSimulator, type TestCertificateAuthority } from '../../src/sim/aws-imds/index.js';
import { StsSimulator } from '../../src/sim/aws-sts/index.js';
import { writeBuildkiteAgentShim, type SimJob } from '../../src/sim/index.js';
import { startHarness, type Harness } from '../helpers/port-harness.js';
import { PORT_BIN, runPort } from '../helpers/spawn-port.js';
import { fencedBlocks } from '../docs/markdown.js';

/**
 * `port agent attest` as an agent hook runs it: the real `port` bin inside a simulated job's
 * environment (the simulator's `buildkite-agent` on PATH), on a simulated EC2 instance (the
 * IMDS simulator as the SDKs find it, AWS_EC2_METADATA_SERVICE_ENDPOINT), against Port.
 */
const ROLE = 'buildkite-deploy-agent';
let h: Harness;
let sts: StsSimulator;
let imds: ImdsSimulator;
let ca: TestCertificateAuthority;
let dir: string;
let shimDir: string;
let url: string;

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as { port: number };
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'port-agent-attest-'));
  sts = await StsSimulator.start({ roles: [{ name: ROLE, trust: { ec2: true } }] });
  ca = createTestCertificateAuthority({ modulusLength: 1024 });
  writeFileSync(join(dir, 'ec2.pem'), ca.certificatePem);
  imds = await ImdsSimulator.start({ instance: { region: 'eu-west-1' }, ca, sts, roleName: ROLE });
  // The agent reaches Port at its public URL, which DPoP proofs and the signed request name.
  const listen = await freePort();
  url = `http://127.0.0.1:${listen}`;
  h = await startHarness({
    config: {
      server: { listen: `127.0.0.1:${listen}`, public_url: url, log_level: 'silent' },
      pools: {
        'linux/deploy': { attestation: ['aws_iam', 'aws_iid'], host_bound: true, aws: { accounts: [sts.accountId], roles: [`arn:aws:iam::${sts.accountId}:role/${ROLE}`] } },
        'linux/iid': { attestation: ['aws_iid'], aws: { accounts: [sts.accountId] } },
      },
      attestation: { aws_iam: { sts_endpoint: sts.url }, aws_iid: { certificates: { default: `file:${join(dir, 'ec2.pem')}` } } },
    },
  });
  shimDir = join(dir, 'bin');
  writeBuildkiteAgentShim(shimDir);
});

afterAll(async () => {
  await h?.close();
  await imds?.close();
  await sts?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A job's environment on the simulated instance: nothing of the test runner's AWS or Port settings. */
function hostEnv(job: SimJob, home: string, extra: Record<string, string> = {}, instance: ImdsSimulator = imds): Record<string, string> {
  return {
    ...h.sim.jobEnv(job),
    PATH: `${shimDir}${delimiter}${process.env.PATH}`,
    HOME: home,
    XDG_STATE_HOME: '',
    PORT_URL: url,
    PORT_AUDIENCE: h.audience,
    PORT_HOST_KEY: '',
    PORT_SERVER_ID: '',
    AWS_EC2_METADATA_SERVICE_ENDPOINT: instance.url,
    AWS_EC2_METADATA_DISABLED: '',
    AWS_ENDPOINT_URL_STS: sts.url,
    AWS_ACCESS_KEY_ID: '',
    AWS_SECRET_ACCESS_KEY: '',
    AWS_SESSION_TOKEN: '',
    AWS_PROFILE: '',
    AWS_WEB_IDENTITY_TOKEN_FILE: '',
    AWS_CONTAINER_CREDENTIALS_RELATIVE_URI: '',
    AWS_CONTAINER_CREDENTIALS_FULL_URI: '',
    AWS_CONFIG_FILE: join(dir, 'no-aws-config'),
    AWS_SHARED_CREDENTIALS_FILE: join(dir, 'no-aws-credentials'),
    BUILDKITE_BUILD_CHECKOUT_PATH: '',
    BUILDKITE_BUILD_PATH: '',
    ...extra,
  };
}

const job = (queue = 'deploy') => h.sim.createJob({ clusterName: 'linux', queueKey: queue });
const home = (name: string) => {
  const d = join(dir, name);
  mkdirSync(d, { recursive: true });
  return d;
};

describe('port agent attest', () => {
  it('attests the host with every method it can produce, creating its key 0600 in a 0700 directory', async () => {
    const j = job();
    const agentHome = home('agent-home');
    const r = await runPort(['agent', 'attest'], { env: hostEnv(j, agentHome) });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const keyFile = join(agentHome, '.local', 'state', 'port', 'host-key.jwk');
    const key = await loadOrCreateHostKey(keyFile);
    expect(r.stdout).toMatch(new RegExp(`^port: agent ${j.agentId} attested for pool linux/deploy with aws_iam, aws_iid until \\d{4}-\\d\\d-\\d\\dT[^;]*; Port tokens of its jobs are bound to host key ${key.jkt}\\n$`));
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);
    expect(statSync(join(agentHome, '.local', 'state', 'port')).mode & 0o777).toBe(0o700);
    // Port said the pool is host-bound: the mark the plugin binds tokens by.
    expect(readFileSync(`${keyFile}.host-bound`, 'utf8')).toBe('true\n');
    expect(await h.port.store.attestations.get(j.agentId, Date.now())).toMatchObject({
      pool: 'linux/deploy',
      methods: ['aws_iam', 'aws_iid'],
      instanceId: imds.instanceId,
      region: 'eu-west-1',
      iamRole: `arn:aws:iam::${sts.accountId}:role/${ROLE}`,
      jkt: key.jkt,
    });
    // IMDSv2 only: every metadata read came with a session token.
    expect(imds.requests.filter((q) => q.path.startsWith('/latest/dynamic/')).every((q) => q.withToken)).toBe(true);

    // Another job on the host: the same key, and --quiet prints nothing.
    const again = await runPort(['agent', 'attest', '--quiet'], { env: hostEnv(job(), agentHome) });
    expect(again).toMatchObject({ code: 0, stdout: '', stderr: '' });
  });

  it('uses --key or $PORT_HOST_KEY, and refuses a key inside the checkout or the build directory', async () => {
    const builds = join(dir, 'builds');
    const checkout = join(builds, 'agent-1', 'acme', 'deploy');
    mkdirSync(checkout, { recursive: true });
    const env = (extra: Record<string, string>) => hostEnv(job(), home('key-home'), { BUILDKITE_BUILD_CHECKOUT_PATH: checkout, BUILDKITE_BUILD_PATH: builds, ...extra });

    const inCheckout = join(checkout, '.port', 'host-key.jwk');
    const viaFlag = await runPort(['agent', 'attest', '--key', inCheckout], { env: env({}) });
    expect(viaFlag.code).toBe(2);
    expect(viaFlag.stderr).toMatch(/^port: agent attest: the host key .* is inside BUILDKITE_BUILD_CHECKOUT_PATH/);
    expect(existsSync(inCheckout)).toBe(false);

    const viaEnv = await runPort(['agent', 'attest'], { env: env({ PORT_HOST_KEY: join(builds, 'keys', 'k.jwk') }) });
    expect(viaEnv.code).toBe(2);
    expect(viaEnv.stderr).toContain('is inside BUILDKITE_BUILD_PATH');

    // A symbolic link into the checkout does not hide where the key would live.
    const link = join(dir, 'link-to-checkout');
    rmSync(link, { force: true });
    symlinkSync(checkout, link);
    const viaLink = await runPort(['agent', 'attest', '--key', join(link, 'k.jwk')], { env: env({}) });
    expect(viaLink.code).toBe(2);

    // A directory of the checkout whose name starts with two dots is still inside it (the
    // checkout alone: where BUILDKITE_BUILD_PATH is unset or elsewhere, nothing else catches it).
    const dotted = join(checkout, '..port', 'host-key.jwk');
    const viaDotted = await runPort(['agent', 'attest', '--key', dotted], { env: env({ BUILDKITE_BUILD_PATH: '' }) });
    expect(viaDotted.stderr).toMatch(/is inside BUILDKITE_BUILD_CHECKOUT_PATH/);
    expect(viaDotted.code).toBe(2);
    expect(existsSync(dotted)).toBe(false);

    // Another instance (the first one is bound to the key it registered first).
    const other = await ImdsSimulator.start({ instance: { region: 'eu-west-1' }, ca, sts, roleName: ROLE });
    const outside = join(dir, 'state', 'host.jwk');
    const ok = await runPort(['agent', 'attest', '--key', outside, '--methods', 'aws_iam,aws_iid'], {
      env: hostEnv(job(), home('key-home'), { BUILDKITE_BUILD_CHECKOUT_PATH: checkout, BUILDKITE_BUILD_PATH: builds }, other),
    });
    await other.close();
    expect(ok.stderr).toBe('');
    expect(ok.code).toBe(0);
    expect(statSync(outside).mode & 0o777).toBe(0o600);
  });

  it('refuses a key file others can read', async () => {
    const keyDir = join(dir, 'loose');
    mkdirSync(keyDir, { recursive: true, mode: 0o700 });
    const keyFile = join(keyDir, 'host-key.jwk');
    await loadOrCreateHostKey(keyFile);
    chmodSync(keyFile, 0o644);
    const r = await runPort(['agent', 'attest', '--key', keyFile], { env: hostEnv(job(), home('loose-home')) });
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/can be read or written by group or others \(mode 644\)/);
  });

  it("exits 1 with Port's reason when Port refuses, and 1 when the host can produce nothing", async () => {
    const j = job('iid');
    const refused = await runPort(['agent', 'attest', '--methods', 'aws_iam'], { env: hostEnv(j, home('refused-home')) });
    expect(refused.code).toBe(1);
    expect(refused.stdout).toBe('');
    expect(refused.stderr).toMatch(/^port: agent attest: refused by Port \(400 invalid_attestation\): Pool linux\/iid requires aws_iid attestation/);
    expect(await h.port.store.attestations.get(j.agentId, Date.now())).toBeUndefined();

    const bare = await runPort(['agent', 'attest'], { env: hostEnv(job(), home('bare-home'), { AWS_EC2_METADATA_DISABLED: 'true' }) });
    expect(bare.code).toBe(1);
    expect(bare.stderr).toMatch(/this host can produce no attestation/);
  });

  it('exits 2 for usage mistakes: no URL, outside a job, an unknown method, plain http to another host', async () => {
    const env = hostEnv(job(), home('usage-home'));
    const cases: [string[], Record<string, string>, RegExp][] = [
      [['agent', 'attest'], { PORT_URL: '' }, /give Port's URL/],
      [['agent', 'attest'], { BUILDKITE_JOB_ID: '', BUILDKITE_AGENT_ACCESS_TOKEN: '' }, /not inside a Buildkite job/],
      [['agent', 'attest', '--methods', 'aws_iam,buildkite'], {}, /"buildkite" is not a method/],
      [['agent', 'attest', '--url', 'http://port.example.com'], {}, /https:\/\//],
    ];
    for (const [args, extra, message] of cases) {
      const r = await runPort(args, { env: { ...env, ...extra } });
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toMatch(message);
    }
  });
});

/** Runs a script with exactly `env` (nothing inherited); resolves with its status and output. */
function runBash(args: string[], env: Record<string, string>): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('/bin/bash', args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, out }));
  });
}

describe('the agent hooks in docs/guides/agent-attestation.md, as written', () => {
  const hooks = fencedBlocks('docs/guides/agent-attestation.md').filter((b) => b.lang === 'bash');
  const hook = (name: string): string => {
    const block = hooks.find((b) => b.body.includes(`# /etc/buildkite-agent/hooks/${name}`));
    expect(block, `the guide's ${name} hook`).toBeDefined();
    return block!.body;
  };
  let instance: ImdsSimulator;
  let agentHome: string;
  let settings: string;

  beforeAll(async () => {
    instance = await ImdsSimulator.start({ instance: { region: 'eu-west-1' }, ca, sts, roleName: ROLE });
    agentHome = home('hooks-agent-home');
    // `port` as `npm install -g buildkite-port` provides it, beside the simulator's buildkite-agent.
    writeFileSync(join(shimDir, 'port'), `#!/bin/sh\nexec "${process.execPath}" "${PORT_BIN}" "$@"\n`, { mode: 0o755 });
    // The agent's settings file (/etc/buildkite-agent/port.env), here pointing at the simulators.
    settings = join(dir, 'port.env');
    writeFileSync(
      settings,
      [
        `PATH=${shimDir}:/usr/local/bin:/usr/bin:/bin`,
        `HOME=${agentHome}`,
        `PORT_URL=${url}`,
        `PORT_AUDIENCE=${h.audience}`,
        `AWS_EC2_METADATA_SERVICE_ENDPOINT=${instance.url}`,
        `AWS_ENDPOINT_URL_STS=${sts.url}`,
        `AWS_CONFIG_FILE=${join(dir, 'no-aws-config')}`,
        `AWS_SHARED_CREDENTIALS_FILE=${join(dir, 'no-aws-credentials')}`,
        '',
      ].join('\n'),
    );
  });
  afterAll(() => instance?.close());

  const written = (name: string): string => {
    const file = join(dir, `hook-${name}`);
    writeFileSync(file, hook(name).replaceAll('/etc/buildkite-agent/port.env', settings), { mode: 0o755 });
    return file;
  };

  it('pre-bootstrap: executed in the agent\'s environment (no Job API), attests the job\'s agent', async () => {
    const j = job();
    const jobEnv = h.sim.jobEnv(j);
    // What the agent gives pre-bootstrap (agent/job_runner.go): its own environment and these.
    const r = await runBash([written('pre-bootstrap')], {
      PATH: '/usr/bin:/bin',
      BUILDKITE_ENV_FILE: join(dir, 'job-env'),
      BUILDKITE_JOB_ID: jobEnv.BUILDKITE_JOB_ID!,
      BUILDKITE_AGENT_ACCESS_TOKEN: jobEnv.BUILDKITE_AGENT_ACCESS_TOKEN!,
      BUILDKITE_AGENT_ENDPOINT: jobEnv.BUILDKITE_AGENT_ENDPOINT!,
    });
    expect(r.out).toMatch(new RegExp(`^port: agent ${j.agentId} attested for pool linux/deploy with aws_iam, aws_iid until `));
    expect(r.code).toBe(0);
    const key = await loadOrCreateHostKey(join(agentHome, '.local', 'state', 'port', 'host-key.jwk'));
    expect(await h.port.store.attestations.get(j.agentId, Date.now())).toMatchObject({ instanceId: instance.instanceId, jkt: key.jkt });
  });

  it('environment: sourced into the job, it ignores what the pipeline put in the job\'s environment', async () => {
    const j = job();
    const checkout = join(dir, 'hooks-builds', 'checkout');
    mkdirSync(checkout, { recursive: true });
    const pipelineEnv = {
      // A pipeline's env: trying other credentials, another metadata service, another Port and a key it can read.
      AWS_ACCESS_KEY_ID: 'AKIAPIPELINEHOSTILE1',
      AWS_SECRET_ACCESS_KEY: 'pipeline-secret-not-the-instance-role-0',
      AWS_EC2_METADATA_SERVICE_ENDPOINT: 'http://127.0.0.1:9',
      PORT_URL: 'https://port.attacker.example',
      PORT_HOST_KEY: join(checkout, 'key.jwk'),
    };
    const r = await runBash(['-c', '. "$1"', 'environment', written('environment')], {
      ...h.sim.jobEnv(j),
      PATH: `${shimDir}:/usr/bin:/bin`,
      HOME: agentHome,
      BUILDKITE_BUILD_CHECKOUT_PATH: checkout,
      ...pipelineEnv,
    });
    expect(r.out).toMatch(new RegExp(`^port: agent ${j.agentId} attested for pool linux/deploy with aws_iam, aws_iid until `));
    expect(r.code).toBe(0);
    const key = await loadOrCreateHostKey(join(agentHome, '.local', 'state', 'port', 'host-key.jwk'));
    expect(await h.port.store.attestations.get(j.agentId, Date.now())).toMatchObject({
      instanceId: instance.instanceId,
      iamRole: `arn:aws:iam::${sts.accountId}:role/${ROLE}`,
      jkt: key.jkt,
    });
    expect(existsSync(pipelineEnv.PORT_HOST_KEY)).toBe(false);
  });

  it('environment: a failed attestation fails the hook with a message', async () => {
    const j = job('iid');
    // Another host key than the one this instance bound: Port refuses.
    writeFileSync(settings, `${readFileSync(settings, 'utf8')}PORT_HOST_KEY=${join(dir, 'hooks-other-key', 'k.jwk')}\n`);
    const r = await runBash(['-c', '. "$1"', 'environment', written('environment')], { ...h.sim.jobEnv(j), PATH: '/usr/bin:/bin', HOME: agentHome });
    expect(r.code).toBe(1);
    expect(r.out).toContain('refused by Port (403 attestation_failed)');
    expect(r.out).toContain('port agent attest failed: this agent is not attested to Port');
  });
});
