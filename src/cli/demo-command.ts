import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { stringify } from 'yaml';
import { configFromObject } from '../config/config.js';
import { startPort, type RunningPort } from '../server/port-server.js';
import { lockDemoDir } from './demo-lock.js';
import { EXIT_FAILED, EXIT_USAGE } from './exit-codes.js';
import { BuildkiteSimulator, writeBuildkiteAgentShim } from '../sim/index.js';
import type { SimJob } from '../sim/types.js';

/** The example policies shipped with Port (examples/policies), from dist/cli or src/cli. */
export const EXAMPLE_POLICIES = fileURLToPath(new URL('../../examples/policies', import.meta.url));
/** This package's own bin: the demo's commands run it by path, never through npx (the registry's `port` is an unrelated package). */
const PORT_BIN = fileURLToPath(new URL('../../bin/port.js', import.meta.url));

interface DemoOptions {
  dir: string;
  port: string;
  simPort: string;
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

/**
 * `port demo`: Port on the embedded SQLite default with the example policies, plus
 * the local Buildkite simulator, and the commands a newcomer pastes to see it work.
 */
export function registerDemoCommand(program: Command): void {
  program
    .command('demo')
    .description('first run: Port + a local Buildkite simulator with example policies')
    .option('--dir <dir>', 'where the demo keeps its config, database and buildkite-agent stand-in', '.port-demo')
    .option('--port <port>', "Port's port (0 = any free port)", '8080')
    .option('--sim-port <port>', "the Buildkite simulator's port (0 = any free port)", '8181')
    .action(async (opts: DemoOptions) => {
      const dir = resolve(opts.dir);
      mkdirSync(dir, { recursive: true });
      let lock: { release(): void };
      try {
        lock = lockDemoDir(dir);
      } catch (err) {
        process.stderr.write(`port demo: ${(err as Error).message}\n`);
        process.exitCode = EXIT_USAGE;
        return;
      }
      const portNumber = Number(opts.port) || (await freePort());
      let sim: BuildkiteSimulator;
      try {
        sim = await BuildkiteSimulator.start({ organization: 'acme', port: Number(opts.simPort) });
      } catch (err) {
        lock.release();
        return refuseStart(err, `the Buildkite simulator's port ${opts.simPort}`, '--sim-port 0');
      }
      const publicUrl = `http://127.0.0.1:${portNumber}`;
      // The demo seals its signing keys as production should (issuer.key_encryption_key).
      const kekFile = join(dir, 'key-encryption-key');
      if (!existsSync(kekFile)) writeFileSync(kekFile, randomBytes(32).toString('base64url'), { mode: 0o600 });
      // The demo's brokered secret: a random value in a file, as a real one would be.
      const npmTokenFile = join(dir, 'npm-publish-token');
      if (!existsSync(npmTokenFile)) writeFileSync(npmTokenFile, `npm_${randomBytes(18).toString('base64url')}`, { mode: 0o600 });
      const raw = {
        server: { listen: `127.0.0.1:${portNumber}`, public_url: publicUrl },
        store: { sqlite: join(dir, 'port.db') },
        buildkite: { organization: 'acme', issuer: sim.issuer, jwks_url: sim.jwksUrl, audience: publicUrl },
        policies: EXAMPLE_POLICIES,
        issuer: { key_encryption_key: `file:${kekFile}` },
        credentials: {
          'deploy-token': { type: 'port_token', audience: 'https://deploy.acme.internal', description: 'deploys acme/deploy to production' },
          'npm-publish': { type: 'secret', value: `file:${npmTokenFile}`, description: 'publishes release packages' },
        },
      };
      const configFile = join(dir, 'port.yaml');
      writeFileSync(configFile, `# Written by \`port demo\`; Buildkite is the local simulator at ${sim.url}.\n${stringify(raw)}`);
      const config = configFromObject(raw, configFile);
      let port: RunningPort;
      try {
        // The demo's store is its own: created on first run, reused after.
        port = await startPort(config, { logger: false, handleSignals: true, createStore: true });
      } catch (err) {
        await sim.close();
        lock.release();
        return refuseStart(err, `port ${portNumber}`, '--port 0');
      }
      const bin = join(dir, 'bin');
      writeBuildkiteAgentShim(bin);

      const deployMain = sim.createJob({ pipelineSlug: 'deploy', branch: 'main', stepKey: 'deploy', runnerEnvironment: 'self-hosted' });
      const deployFeature = sim.createJob({ pipelineSlug: 'deploy', branch: 'feature/login', stepKey: 'deploy', runnerEnvironment: 'self-hosted' });
      const rel = relative(process.cwd(), dir) || '.';
      // What the agent gives a job's processes (job id, job token, Job API socket), as a sourceable file.
      const jobFile = (name: string, job: SimJob) => {
        const env = { ...sim.jobEnv(job), PORT_URL: publicUrl };
        writeFileSync(join(dir, name), Object.entries(env).map(([k, v]) => `export ${k}='${v}'`).join('\n') + '\n', { mode: 0o600 });
        return `${rel}/${name}`;
      };
      const portCmd = `node ${relative(process.cwd(), PORT_BIN)}`;
      const mainEnv = jobFile('deploy-main.env', deployMain);
      const featureEnv = jobFile('deploy-feature.env', deployFeature);
      process.stdout.write(
        [
          '',
          `Port is running at ${publicUrl} (store: ${config.store.sqlite}, policies: ${config.policies})`,
          `A Buildkite simulator is issuing job tokens at ${sim.url} (organization "acme").`,
          '',
          `In another terminal, in ${process.cwd()}:`,
          '',
          '  # a buildkite-agent stand-in that asks the simulator for job tokens, as the real agent would',
          `  export PATH="${bin}:$PATH"`,
          '',
          '  # 1. a deploy job on main exchanges its Buildkite token for a Port token with the deploy grant',
          `  (. ${mainEnv} && ${portCmd} token exchange --scope deploy-token --json)`,
          '',
          '  # 2. the same pipeline on a feature branch is denied that grant, with the reason',
          `  (. ${featureEnv} && ${portCmd} token exchange --scope deploy-token)`,
          '',
          '  # 3. every decision is in a hash-chained log; check it, then read it',
          `  ${portCmd} audit verify -c ${rel}/port.yaml`,
          `  ${portCmd} audit tail -c ${rel}/port.yaml --no-follow`,
          '',
          '  # 4. the policies and their tests',
          `  ${portCmd} policy test --policies ${relative(process.cwd(), config.policies) || '.'}`,
          `  curl -s ${publicUrl}/.well-known/jwks.json`,
          '',
          'Press Ctrl-C to stop.',
          '',
        ].join('\n'),
      );
      const stop = async () => {
        // Open keep-alive connections must not hold the process up.
        setTimeout(() => process.exit(0), 5000).unref();
        await port.close();
        await sim.close();
        lock.release();
        process.exit(0);
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
}

/** A demo that can't start says why in one line: a taken port suggests a free one (exit 2). */
function refuseStart(err: unknown, what: string, fix: string): void {
  if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE') {
    process.stderr.write(`port demo: ${what} is already in use; stop what holds it, or run with ${fix} to take any free port\n`);
    process.exitCode = EXIT_USAGE;
    return;
  }
  process.stderr.write(`port demo: cannot start: ${(err as Error).message}\n`);
  process.exitCode = EXIT_FAILED;
}
