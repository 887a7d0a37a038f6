/**
 * Policy sets for the benchmarks: the small set the exchange server runs with, and a
 * generator for a realistic 100-policy organization (permits and forbids on exchange
 * and assume, conditions on pipeline_slug, branch, tag, build source, queue and agent
 * tags, `principal in Pipeline` scopes), valid against Port's schema in strict mode.
 */

export const ORGANIZATION = 'acme';
export const AUDIENCE = 'https://port.acme.test';

/** Like test/helpers/port-harness.ts TEST_POLICIES: an exchange permit, a forbid, two assume permits. */
export const EXCHANGE_POLICIES = {
  'exchange.cedar': `
@id("acme-jobs-exchange")
@reason("jobs of acme may hold a Port token")
permit (principal, action == Port::Action::"exchange", resource == Port::Organization::"acme");

@id("no-untrusted-pipeline")
@reason("the untrusted pipeline never gets a Port token")
forbid (principal, action == Port::Action::"exchange", resource)
when { principal.pipeline_slug == "untrusted" };
`,
  'credentials.cedar': `
@id("deploy-from-main")
@reason("deploys come from main of acme/deploy")
permit (principal, action == Port::Action::"assume", resource == Port::Credential::"deploy-token")
when { principal.pipeline_slug == "deploy" && principal.branch == "main" };

@id("npm-on-tags")
@reason("packages are published from tag builds")
permit (principal, action == Port::Action::"assume", resource == Port::Credential::"npm-publish")
when { principal.tag != "" };
`,
};

/** The credentials the exchange server is configured with. */
export const EXCHANGE_CREDENTIALS = {
  'deploy-token': { type: 'port_token', audience: 'https://deploy.acme.test' },
  'npm-publish': { type: 'secret', value: 'command:printf %s bench-npm-secret' },
};

export const SERVICES = 30;
export const PACKAGES = 10;

const policy = (id, reason, text) => `@id("${id}")\n@reason("${reason}")\n${text}\n`;
const exchange = 'action == Port::Action::"exchange"';
const assume = 'action == Port::Action::"assume"';
const cred = (name) => `resource == Port::Credential::"${name}"`;

/** 100 policies as { 'file.cedar': text }, ten files, each policy with a unique @id. */
export function generatePolicies(count = 100) {
  const all = [];
  // Organization-wide exchange rules.
  all.push(['org', policy('acme-exchange', 'jobs of acme may hold a Port token', `permit (principal, ${exchange}, resource == Port::Organization::"${ORGANIZATION}");`)]);
  all.push(['org', policy('exchange-audience', 'Port tokens are only for Port', `forbid (principal, ${exchange}, resource)\nunless { context.audience == "${AUDIENCE}" };`)]);
  all.push(['org', policy('no-sandbox-triggers', 'sandboxes cannot be triggered into tokens', `forbid (principal, ${exchange}, resource)\nwhen { principal.pipeline_slug like "sandbox-*" && principal.build_source == "trigger_job" };`)]);
  all.push(['org', policy('no-untrusted-queue', 'the untrusted queue never gets tokens', `forbid (principal, ${exchange}, resource)\nwhen { principal has queue_key && principal.queue_key == "untrusted" };`)]);
  for (let k = 0; k < 5; k++) {
    all.push(['org', policy(`no-untrusted-${k}`, `untrusted-${k} never gets a Port token`, `forbid (principal, ${exchange}, resource)\nwhen { principal.pipeline_slug == "untrusted-${k}" };`)]);
  }
  // Per service: production deploys from main or release branches, staging from any build of the pipeline.
  for (let n = 0; n < SERVICES; n++) {
    all.push([
      `svc-${n % 5}`,
      policy(
        `deploy-svc-${n}`,
        `svc-${n} deploys from main or release branches`,
        `permit (principal, ${assume}, ${cred(`deploy-svc-${n}`)})\nwhen { principal.pipeline_slug == "svc-${n}" && (principal.branch == "main" || principal.branch like "release/*") };`,
      ),
    ]);
    all.push([
      `svc-${n % 5}`,
      policy(`staging-svc-${n}`, `any build of svc-${n} may use staging`, `permit (principal in Port::Pipeline::"${ORGANIZATION}/svc-${n}", ${assume}, ${cred(`staging-svc-${n}`)});`),
    ]);
  }
  // Packages: publish from version tags only, never release candidates from scheduled builds.
  for (let n = 0; n < PACKAGES; n++) {
    all.push([
      'packages',
      policy(`npm-pkg-${n}`, `pkg-${n} publishes from v* tags`, `permit (principal, ${assume}, ${cred(`npm-pkg-${n}`)})\nwhen { principal.pipeline_slug == "pkg-${n}" && principal.tag like "v*" };`),
    ]);
  }
  for (let n = 0; n < PACKAGES; n++) {
    all.push([
      'packages',
      policy(`no-rc-publish-${n}`, `no scheduled rc publishes of pkg-${n}`, `forbid (principal, ${assume}, ${cred(`npm-pkg-${n}`)})\nwhen { principal.tag like "*-rc*" && principal.build_source == "schedule" };`),
    ]);
  }
  // Guard rails on production credentials.
  const guards = [
    (n) => [`no-hosted-deploy-${n}`, `svc-${n} deploys run on self-hosted agents`, `forbid (principal, ${assume}, ${cred(`deploy-svc-${n}`)})\nwhen { principal.runner_environment == "buildkite-hosted" };`],
    (n) => [`deploy-queue-${n}`, `svc-${n} deploys run on the deploy queue`, `forbid (principal, ${assume}, ${cred(`deploy-svc-${n}`)})\nunless { principal has queue_key && principal.queue_key == "deploy" };`],
  ];
  for (let n = 0; all.length < count - 6 && n < SERVICES; n++) {
    for (const g of guards) {
      if (all.length < count - 6) all.push(['guards', policy(...g(n))]);
    }
  }
  // Shared credentials decided on agent tags and the build.
  all.push(['shared', policy('cache-write-builders', 'builders may write the cache', `permit (principal, ${assume}, ${cred('cache-write')})\nwhen { principal.agent.hasTag("queue") && principal.agent.getTag("queue") == "builders" };`)]);
  all.push(['shared', policy('cache-read-all', 'every job may read the cache', `permit (principal, ${assume}, ${cred('cache-read')});`)]);
  all.push(['shared', policy('cache-no-forks', 'webhook builds of sandboxes may not read the cache', `forbid (principal, ${assume}, ${cred('cache-read')})\nwhen { principal.pipeline_slug like "sandbox-*" && principal.build_source == "webhook" };`)]);
  all.push(['shared', policy('registry-push-main', 'images are pushed from main', `permit (principal, ${assume}, ${cred('registry-push')})\nwhen { principal.branch == "main" && principal.build_number > 0 };`)]);
  all.push(['shared', policy('registry-push-tags', 'images are pushed from tags', `permit (principal, ${assume}, ${cred('registry-push')})\nwhen { principal.tag != "" && principal has cluster_name && principal.cluster_name == "default" };`)]);
  all.push(['shared', policy('no-registry-sandbox', 'sandboxes never push images', `forbid (principal, ${assume}, ${cred('registry-push')})\nwhen { principal.pipeline_slug like "sandbox-*" };`)]);
  for (let k = 0; all.length < count; k++) {
    all.push(['shared', policy(`extra-${k}`, `extra rule ${k}`, `forbid (principal, ${assume}, ${cred(`deploy-svc-${k}`)})\nwhen { principal.branch like "dependabot/*" };`)]);
  }
  const files = {};
  for (const [file, text] of all.slice(0, count)) files[`${file}.cedar`] = (files[`${file}.cedar`] ?? '') + text + '\n';
  return files;
}

/** A JobIdentity (src/identity/job-identity.ts) for a varied job of the generated organization. */
export function identity(i) {
  const kinds = [
    { pipelineSlug: `svc-${i % SERVICES}`, branch: 'main', tag: null },
    { pipelineSlug: `svc-${i % SERVICES}`, branch: `feature/x-${i}`, tag: null },
    { pipelineSlug: `svc-${i % SERVICES}`, branch: 'release/2.1', tag: null },
    { pipelineSlug: `pkg-${i % PACKAGES}`, branch: 'main', tag: `v1.${i}.0` },
    { pipelineSlug: `sandbox-${i % 3}`, branch: 'main', tag: null },
    { pipelineSlug: `untrusted-${i % 5}`, branch: 'main', tag: null },
  ];
  const k = kinds[i % kinds.length];
  return {
    subject: `organization:${ORGANIZATION}:pipeline:${k.pipelineSlug}:ref:refs/heads/${k.branch}:commit:${'a'.repeat(40)}:step:build`,
    organizationSlug: ORGANIZATION,
    organizationId: '0b0b5f9e-3f0a-4b8e-9d1e-2c1a3e4f5a6b',
    pipelineSlug: k.pipelineSlug,
    pipelineId: '1c1c5f9e-3f0a-4b8e-9d1e-2c1a3e4f5a6b',
    buildNumber: 100 + i,
    buildId: '2d2d5f9e-3f0a-4b8e-9d1e-2c1a3e4f5a6b',
    branch: k.branch,
    tag: k.tag,
    commit: 'a'.repeat(40),
    stepKey: 'build',
    jobId: `01890000-0000-7000-8000-${String(i).padStart(12, '0')}`,
    agentId: `01890000-0000-7000-9000-${String(i).padStart(12, '0')}`,
    buildSource: ['ui', 'webhook', 'schedule', 'trigger_job'][i % 4],
    runnerEnvironment: 'self-hosted',
    clusterId: '3e3e5f9e-3f0a-4b8e-9d1e-2c1a3e4f5a6b',
    clusterName: 'default',
    queueId: '4f4f5f9e-3f0a-4b8e-9d1e-2c1a3e4f5a6b',
    queueKey: i % 3 === 0 ? 'deploy' : 'builders',
    agentTags: { queue: i % 3 === 0 ? 'deploy' : 'builders', os: 'linux' },
    issuedAt: 1_700_000_000,
    expiresAt: 1_700_003_600,
  };
}

/** The credential a varied job of the generated organization asks to assume. */
export function credentialFor(id, i) {
  if (id.pipelineSlug.startsWith('pkg-')) return `npm-${id.pipelineSlug}`;
  if (id.pipelineSlug.startsWith('svc-')) return i % 2 === 0 ? `deploy-${id.pipelineSlug}` : `staging-${id.pipelineSlug}`;
  return ['cache-read', 'cache-write', 'registry-push'][i % 3];
}

/**
 * `n` exchange and assume requests for varied jobs, as TokenExchange builds them (each job
 * kind asks for both actions; credentials vary with the round). `small`: the exchange
 * server's two pipelines and its one credential. `from`: the first job's index.
 */
export async function decisionRequests(n, small, from = 0) {
  const { credentialRef, jobRequestParts, organizationRef } = await import('../dist/policy/entities.js');
  const out = [];
  for (let i = 0; i < n; i++) {
    const k = from + Math.floor(i / 2);
    const id = small ? { ...identity(k), pipelineSlug: k % 3 === 0 ? 'web-app' : 'deploy' } : identity(k);
    const { principal, entities } = jobRequestParts(id);
    if (i % 2 === 0) {
      out.push({ principal, action: 'exchange', resource: organizationRef(id.organizationSlug), context: { audience: AUDIENCE, scopes: ['deploy-token'] }, entities });
    } else {
      const credential = small ? 'deploy-token' : credentialFor(id, Math.floor(k / 6));
      out.push({ principal, action: 'assume', resource: credentialRef(credential), context: {}, entities });
    }
  }
  return out;
}

/** The exchange server's policies plus the relay's: reads anywhere, uploads under /stream, nothing under /admin. */
export const RELAY_POLICIES = {
  ...EXCHANGE_POLICIES,
  'relay.cedar': `
@id("bench-read")
@reason("acme jobs may read from the bench upstream")
permit (principal is Port::Job, action == Port::Action::"proxy", resource == Port::Upstream::"bench")
when { context.method == "GET" || context.method == "HEAD" };

@id("bench-upload")
@reason("deploy jobs may upload under /stream")
permit (principal is Port::Job, action == Port::Action::"proxy", resource == Port::Upstream::"bench")
when { principal.pipeline_slug == "deploy" && (context.method == "PUT" || context.method == "POST") && context.path like "/stream/*" };

@id("no-admin")
@reason("nobody reaches the admin area through the relay")
forbid (principal, action == Port::Action::"proxy", resource)
when { context.path like "/admin*" };
`,
};
