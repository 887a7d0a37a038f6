import { randomBytes } from 'node:crypto';
import { accessSync, constants, existsSync, mkdirSync, realpathSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { delimiter, isAbsolute, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { configFromObject } from '../config/config.js';
import { startPort, type RunningPort } from '../server/port-server.js';
import { openDemoApproval } from '../demo/approval-scenario.js';
import { startArtifactsApi } from '../demo/artifacts-api.js';
import { resetDemoDir } from '../demo/demo-state.js';
import { DEMO_CLIENT_ID, DEMO_PEOPLE, DEMO_SCOPES, startDemoIdentityProvider } from '../demo/identity-provider.js';
import { walkthroughText } from '../demo/walkthrough.js';
import { lockDemoDir } from './demo-lock.js';
import { EXIT_FAILED, EXIT_USAGE } from './exit-codes.js';
import { BuildkiteSimulator, writeBuildkiteAgentShim } from '../sim/index.js';
import { StsSimulator } from '../sim/aws-sts/index.js';
import type { SimJob } from '../sim/types.js';

/** The example policies shipped with Port (examples/policies), from dist/cli or src/cli. */
export const EXAMPLE_POLICIES = fileURLToPath(new URL('../../examples/policies', import.meta.url));
/**
 * The pool of the demo's jobs: the simulator gives a job the `default` cluster and the
 * queue its `queue` tag names, else `default` (src/sim/jobs.ts).
 */
const DEMO_POOL = 'default/default';
/** The queue of the agent that takes a deploy job outside its pool. */
const OTHER_QUEUE = 'builds';
/** This package's own bin: the demo's commands run it by path, never through npx (the registry's `port` is an unrelated package). */
const PORT_BIN = fileURLToPath(new URL('../../bin/port.js', import.meta.url));

export interface DemoOptions {
  dir: string;
  port: string;
  simPort: string;
  idpPort: string;
  servicePort: string;
  keep?: boolean;
}

/** Something the demo started, stopped again on exit or when a later part fails to start. */
type Closer = () => Promise<void>;

class DemoStartError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => res(port));
    });
  });
}

/** A `--…-port` value: 0 (any free port) to 65535. */
function portOption(flag: string, value: string): number {
  const n = Number(value);
  if (!/^\d{1,5}$/.test(value) || n > 65535) throw new DemoStartError(`${flag} must be a TCP port number from 0 (any free port) to 65535; got "${value.slice(0, 20)}"`, EXIT_USAGE);
  return n;
}

/**
 * Whether `port` on PATH is this package's bin (an installed buildkite-port): then the printed
 * steps say `port …`. Anything else named `port` on PATH (the registry has an unrelated one)
 * gets this bin by path instead.
 */
function portOnPathIsThisOne(): boolean {
  for (const folder of (process.env.PATH ?? '').split(delimiter)) {
    if (!isAbsolute(folder)) continue;
    const candidate = join(folder, 'port');
    try {
      accessSync(candidate, constants.X_OK);
    } catch {
      continue;
    }
    // The first `port` the shell would run decides.
    return realpathSync(candidate) === realpathSync(PORT_BIN);
  }
  return false;
}

/** A shell word for a path: as is when it needs no quoting, else single-quoted. */
function shellWord(s: string): string {
  return /^[A-Za-z0-9_./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** A random secret in a file only its owner reads, as a real one would be kept. */
function secretFile(dir: string, name: string, value: string): string {
  const file = join(dir, name);
  writeFileSync(file, `${value}\n`, { mode: 0o600 });
  return file;
}

/**
 * `port demo`: Port on the embedded SQLite default with the example policies, and around
 * it everything a first run needs to see each capability: the Buildkite simulator (job
 * tokens, REST API, webhooks), an internal service behind the relay, an identity provider
 * for approvers, and an AWS STS simulator; then the commands a newcomer pastes to see it work.
 */
export async function runDemoCommand(opts: DemoOptions): Promise<void> {
  const closers: Closer[] = [];
  const closeAll = async () => {
    for (const close of closers.reverse()) await close().catch(() => undefined);
  };
  try {
    await runDemo(opts, closers);
  } catch (err) {
    await closeAll();
    const e = err as DemoStartError;
    process.stderr.write(`port demo: ${e instanceof DemoStartError ? e.message : `cannot start: ${(err as Error).message}`}\n`);
    process.exitCode = e instanceof DemoStartError ? e.exitCode : EXIT_FAILED;
    return;
  }
  const stop = async () => {
    // Open keep-alive connections must not hold the process up.
    setTimeout(() => process.exit(0), 5000).unref();
    await closeAll();
    process.exit(0);
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

async function runDemo(opts: DemoOptions, closers: Closer[]): Promise<void> {
  const ports = {
    port: portOption('--port', opts.port),
    sim: portOption('--sim-port', opts.simPort),
    idp: portOption('--idp-port', opts.idpPort),
    service: portOption('--service-port', opts.servicePort),
  };
  const dir = resolve(opts.dir);
  mkdirSync(dir, { recursive: true });
  let lock: { release(): void };
  try {
    lock = lockDemoDir(dir);
  } catch (err) {
    throw new DemoStartError((err as Error).message, EXIT_USAGE);
  }
  closers.push(async () => lock.release());
  const state = resetDemoDir(dir, opts.keep === true);

  /** Starts a part; a taken port says which and how to take any free one (exit 2). */
  const start = async <T extends { close(): Promise<void> }>(what: string, fix: string, run: () => Promise<T>): Promise<T> => {
    try {
      const part = await run();
      closers.push(() => part.close());
      return part;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE') {
        throw new DemoStartError(`${what} is already in use; stop what holds it, or run with ${fix} to take any free port`, EXIT_USAGE);
      }
      throw err;
    }
  };

  const portNumber = ports.port || (await freePort());
  const publicUrl = `http://127.0.0.1:${portNumber}`;
  const sim = await start(`the Buildkite simulator's port ${opts.simPort}`, '--sim-port 0', () => BuildkiteSimulator.start({ organization: 'acme', port: ports.sim }));

  // The internal service behind the relay, and its key, which only Port reads.
  const artifactsKey = `ak_${randomBytes(24).toString('base64url')}`;
  const artifactsKeyFile = secretFile(dir, 'artifacts-api-key', artifactsKey);
  const artifacts = await start(`the demo artifacts API's port ${opts.servicePort}`, '--service-port 0', () => startArtifactsApi({ port: ports.service, apiKey: artifactsKey }));

  // The approvers' identity provider; Port is its one client.
  const ssoSecret = randomBytes(24).toString('base64url');
  const ssoSecretFile = secretFile(dir, 'sso-client-secret', ssoSecret);
  // One short password for every demo person, new each run (it is printed for the newcomer).
  const password = randomBytes(6).toString('base64url').replace(/[-_]/g, 'x');
  const idp = await start(`the demo identity provider's port ${opts.idpPort}`, '--idp-port 0', () =>
    startDemoIdentityProvider({ port: ports.idp, redirectUri: `${publicUrl}/auth/callback`, clientSecret: ssoSecret, password }),
  );

  // AWS: an IAM role that trusts Port as an OIDC identity provider for acme/deploy's jobs.
  const sts = await StsSimulator.start({
    roles: [
      {
        name: 'port-demo-deploy',
        maxSessionDuration: 3600,
        trust: { webIdentity: { provider: publicUrl.replace(/^https?:\/\//, ''), audience: 'sts.amazonaws.com', subjectLike: 'organization:acme:pipeline:deploy:*' } },
      },
    ],
    oidcProviders: [{ url: publicUrl, clientIds: ['sts.amazonaws.com'] }],
  });
  closers.push(() => sts.close());

  // The demo seals its signing keys as production should (issuer.key_encryption_key).
  const kekFile = join(dir, 'key-encryption-key');
  if (!existsSync(kekFile)) writeFileSync(kekFile, randomBytes(32).toString('base64url'), { mode: 0o600 });
  const webhookSecret = randomBytes(24).toString('base64url');
  const raw = {
    server: { listen: `127.0.0.1:${portNumber}`, public_url: publicUrl, admin_token: `file:${secretFile(dir, 'admin-token', `adm_${randomBytes(24).toString('base64url')}`)}` },
    store: { sqlite: join(dir, 'port.db') },
    buildkite: {
      organization: 'acme',
      issuer: sim.issuer,
      jwks_url: sim.jwksUrl,
      audience: publicUrl,
      api_url: sim.url,
      api_token: `file:${secretFile(dir, 'buildkite-api-token', sim.apiToken)}`,
      webhook_secret: `file:${secretFile(dir, 'buildkite-webhook-secret', webhookSecret)}`,
    },
    policies: EXAMPLE_POLICIES,
    issuer: { key_encryption_key: `file:${kekFile}` },
    sso: { issuer: idp.url, client_id: DEMO_CLIENT_ID, client_secret: `file:${ssoSecretFile}`, groups_claim: 'groups', scopes: DEMO_SCOPES, session_ttl: '1h' },
    upstreams: {
      artifacts: { url: artifacts.url, inject: { header: { name: 'X-Api-Key', value: `file:${artifactsKeyFile}` } } },
    },
    credentials: {
      'deploy-token': { type: 'port_token', audience: 'https://deploy.acme.internal', description: 'deploys acme/deploy to production' },
      'npm-publish': { type: 'secret', value: `file:${secretFile(dir, 'npm-publish-token', `npm_${randomBytes(18).toString('base64url')}`)}`, description: 'publishes release packages' },
      'aws-deploy': { type: 'aws_role', role_arn: sts.roleArn('port-demo-deploy'), sts_endpoint: sts.url, duration: '15m', description: 'the AWS role acme/deploy deploys with' },
    },
    // The demo jobs' pool (the simulator's default cluster and queue): before Port hands a
    // job anything it asks the simulator's REST API, with buildkite.api_token, that the job
    // runs on the token's agent and that agent is connected and in this pool.
    pools: { [DEMO_POOL]: { attestation: ['buildkite'] } },
  };
  const configFile = join(dir, 'port.yaml');
  writeFileSync(
    configFile,
    `# Written by \`port demo\`; Buildkite, the identity provider, AWS STS and the artifacts API are the demo's local stand-ins.\n${stringify(raw)}`,
    { mode: 0o600 },
  );
  const config = configFromObject(raw, configFile);
  let port: RunningPort;
  try {
    // The demo's store is its own: created on first run (and reused with --keep).
    port = await startPort(config, { logger: false, handleSignals: true, createStore: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE') {
      throw new DemoStartError(`port ${portNumber} is already in use; stop what holds it, or run with --port 0 to take any free port`, EXIT_USAGE);
    }
    throw err;
  }
  closers.push(() => port.close());

  const bin = join(dir, 'bin');
  writeBuildkiteAgentShim(bin);
  const rel = relative(process.cwd(), dir);
  const shownDir = shellWord(rel === '' ? '.' : rel.startsWith('..') || isAbsolute(rel) ? dir : rel);
  // What the agent gives a job's processes (job id, job token, Job API socket), as a sourceable file.
  const jobFile = (name: string, job: SimJob) => {
    const env = { ...sim.jobEnv(job), PORT_URL: publicUrl };
    const lines = [
      `# The environment of Buildkite job ${job.jobId} (${job.pipelineSlug}, branch ${job.branch}), from port demo.`,
      `export PATH=${shellWord(bin)}:"$PATH"`,
      ...Object.entries(env).map(([k, v]) => `export ${k}=${shellWord(v)}`),
    ];
    writeFileSync(join(dir, name), `${lines.join('\n')}\n`, { mode: 0o600 });
  };
  const deployMain = sim.createJob({ pipelineSlug: 'deploy', branch: 'main', stepKey: 'deploy', runnerEnvironment: 'self-hosted' });
  const deployFeature = sim.createJob({ pipelineSlug: 'deploy', branch: 'feature/login', stepKey: 'deploy', runnerEnvironment: 'self-hosted' });
  jobFile('deploy-main.env', deployMain);
  jobFile('deploy-feature.env', deployFeature);
  // An agent of another queue of the same cluster takes a deploy job on main with
  // `buildkite-agent start --acquire-job` (https://buildkite.com/docs/agent/v3/cli-start),
  // which ignores the job's queue: the token is genuine, its agent is outside the pool.
  const otherAgent = sim.createAgent({ name: 'builds-agent-1', tags: { queue: OTHER_QUEUE } });
  const deployAcquired = sim.acquireJob(sim.createJob({ pipelineSlug: 'deploy', branch: 'main', stepKey: 'deploy', runnerEnvironment: 'self-hosted' }), otherAgent);
  jobFile('deploy-acquired.env', deployAcquired);

  const portCmd = portOnPathIsThisOne() ? 'port' : `node ${shellWord(relative(process.cwd(), PORT_BIN) || PORT_BIN)}`;
  // An AWS CLI profile whose credential_process asks Port with the job's saved Port token
  // (https://docs.aws.amazon.com/cli/latest/userguide/cli-configure-sourcing-external.html).
  writeFileSync(
    join(dir, 'aws-config'),
    [
      '[profile port-demo]',
      'region = us-east-1',
      `endpoint_url = ${sts.url}`,
      `credential_process = sh -c "PORT_TOKEN=$(cat ${shellWord(join(dir, 'deploy-main.token'))}) exec ${shellWord(process.execPath)} ${shellWord(PORT_BIN)} creds aws-deploy --url ${publicUrl}"`,
      '',
    ].join('\n'),
  );

  const approval = await openDemoApproval({ sim, port, publicUrl, webhookSecret });
  process.stdout.write(
    walkthroughText({
      cwd: process.cwd(),
      dir: shownDir,
      port: portCmd,
      state,
      keep: opts.keep === true,
      portUrl: publicUrl,
      simUrl: sim.url,
      idpUrl: idp.url,
      artifactsUrl: artifacts.url,
      stsUrl: sts.url,
      storePath: config.store.sqlite,
      policies: shellWord(relative(process.cwd(), config.policies) || '.'),
      mainJobId: deployMain.jobId,
      pool: DEMO_POOL,
      otherQueue: OTHER_QUEUE,
      approval: { ...approval, approver: DEMO_PEOPLE[0]!.login, author: DEMO_PEOPLE[1]!.login, password },
    }),
  );
}
