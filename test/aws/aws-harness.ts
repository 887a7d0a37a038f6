import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startHarness, TEST_POLICIES, type Harness } from '../helpers/port-harness.js';
import { StsSimulator } from '../../src/sim/aws-sts/index.js';
import type { SimJobInit } from '../../src/sim/index.js';

/** Port's long-term AWS key in the simulator (mode: assume_role). */
export const PORT_AWS_USER = { name: 'port', accessKeyId: 'AKIAPORTSIMULATOR01', secretAccessKey: 'port-sim-secret-Zx9q2Lw8Rk4Tn6Vb1Mc3Pd5Fh7Gj0' };
export const WRONG_SECRET = 'not-the-secret-Qa1Ws2Ed3Rf4Tg5Yh6Uj7Ik8Ol9P';

export const AWS_POLICIES: Record<string, string> = {
  ...TEST_POLICIES,
  'aws.cedar': `
@id("aws-for-deploy")
@reason("the deploy pipeline may assume its AWS roles")
permit (principal, action == Port::Action::"assume", resource)
when { principal.pipeline_slug == "deploy" || principal.pipeline_slug == "other" };
`,
};

export interface AwsHarness extends Harness {
  sts: StsSimulator;
  /** Exchanges a Buildkite token of a new job for a Port token with `scope`. */
  portToken(scope: string, job?: SimJobInit): Promise<string>;
  /** `POST /v1/credentials/<name>` with the bearer. */
  credential(name: string, bearer: string): Promise<{ status: number; body: any }>;
}

/**
 * Port with `aws_role` credentials pointed at a local STS simulator. The simulator's IAM
 * knows Port (https://port.acme.test) as an OIDC provider and reaches its discovery
 * document through an origin override (a hosts-file entry, as the issuer is https).
 */
export async function startAwsHarness(opts: { credentials?: (sts: StsSimulator, dir: string) => Record<string, unknown>; config?: Record<string, unknown> } = {}): Promise<AwsHarness> {
  const dir = mkdtempSync(join(tmpdir(), 'port-aws-'));
  writeFileSync(
    join(dir, 'session-policy.json'),
    `{
  "Version": "2012-10-17",
  "Statement": [
    { "Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::artifacts/\${pipeline_slug}/\${build_branch}/*" },
    { "Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::artifacts", "Condition": { "StringLike": { "s3:prefix": "\${aws:PrincipalTag/pipeline}/*" } } }
  ]
}
`,
  );
  const sts = await StsSimulator.start({
    users: [PORT_AWS_USER],
    roles: [
      { name: 'deploy-web', maxSessionDuration: 3600, trust: { webIdentity: { provider: 'port.acme.test', audience: 'sts.amazonaws.com', subjectLike: 'organization:acme:pipeline:deploy:*' } } },
      { name: 'deploy-keys', maxSessionDuration: 7200, trust: { users: ['port'] } },
    ],
    oidcProviders: [{ url: 'https://port.acme.test', clientIds: ['sts.amazonaws.com'] }],
  });
  process.env.PORT_TEST_AWS_KEY_ID = PORT_AWS_USER.accessKeyId;
  process.env.PORT_TEST_AWS_SECRET = PORT_AWS_USER.secretAccessKey;
  process.env.PORT_TEST_AWS_WRONG_SECRET = WRONG_SECRET;
  const credentials = opts.credentials?.(sts, dir) ?? {
    'aws-web': {
      type: 'aws_role',
      role_arn: sts.roleArn('deploy-web'),
      sts_endpoint: sts.url,
      duration: '30m',
      session_tags: { pipeline: 'pipeline_slug', build: 'build_number' },
      transitive_tag_keys: ['pipeline'],
      session_policy: join(dir, 'session-policy.json'),
    },
    'aws-keys': {
      type: 'aws_role',
      mode: 'assume_role',
      role_arn: sts.roleArn('deploy-keys'),
      sts_endpoint: sts.url,
      region: 'eu-west-1',
      duration: '2h',
      session_tags: { pipeline: 'pipeline_slug', branch: 'build_branch' },
      access_key_id: 'env:PORT_TEST_AWS_KEY_ID',
      secret_access_key: 'env:PORT_TEST_AWS_SECRET',
    },
    'aws-badkeys': {
      type: 'aws_role',
      mode: 'assume_role',
      role_arn: sts.roleArn('deploy-keys'),
      sts_endpoint: sts.url,
      access_key_id: 'env:PORT_TEST_AWS_KEY_ID',
      secret_access_key: 'env:PORT_TEST_AWS_WRONG_SECRET',
    },
    'aws-queue-tag': {
      type: 'aws_role',
      role_arn: sts.roleArn('deploy-web'),
      sts_endpoint: sts.url,
      session_tags: { queue: 'queue_key' },
    },
    // web_identity with no session policy and no tags: only the sub is made from the job.
    'aws-web-plain': {
      type: 'aws_role',
      role_arn: sts.roleArn('deploy-web'),
      sts_endpoint: sts.url,
      duration: '30m',
    },
  };
  // Port tokens outlive every duration above, so sessions get their configured duration
  // (a session is capped by the bearer's token: aws-duration-cap tests).
  const h = await startHarness({ policies: AWS_POLICIES, config: { credentials, issuer: { token_ttl: '3h' }, ...opts.config } });
  sts.setOriginOverride('https://port.acme.test', h.url);
  return {
    ...h,
    sts,
    async portToken(scope, job = {}) {
      const j = h.sim.createJob({ pipelineSlug: 'deploy', branch: 'main', ...job });
      const res = await h.exchange(await h.sim.mintToken(j, { audience: h.audience }), { scope });
      if (res.status !== 200) throw new Error(`exchange failed: ${JSON.stringify(res.body)}`);
      return res.body.access_token as string;
    },
    async credential(name, bearer) {
      const res = await fetch(`${h.url}/v1/credentials/${name}`, { method: 'POST', headers: { authorization: `Bearer ${bearer}` } });
      const text = await res.text();
      return { status: res.status, body: text ? JSON.parse(text) : undefined };
    },
    async close() {
      await h.close();
      await sts.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
