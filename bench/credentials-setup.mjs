/**
 * What bench/credentials.mjs and its children share: Port's credentials and policies for
 * the run, the STS simulator's IAM (as test/aws/aws-harness.ts sets it up), the claims a
 * baseline signs, and the CPU time of a process's children.
 */
import { readdirSync, readFileSync } from 'node:fs';

export const ORGANIZATION = 'acme';
/** Port's public URL: `iss` of its tokens, an https origin the STS simulator reaches through an override. */
export const PUBLIC_URL = 'https://port.acme.test';
/** The issuer the bare STS baseline signs its web identity tokens as. */
export const BASELINE_ISSUER = 'https://baseline.acme.test';
export const WEB_IDENTITY_AUDIENCE = 'sts.amazonaws.com';

/** Port's long-term AWS key in the simulator (mode assume_role); the same values as test/aws. */
export const PORT_AWS_USER = { name: 'port', accessKeyId: 'AKIAPORTSIMULATOR01', secretAccessKey: 'port-sim-secret-Zx9q2Lw8Rk4Tn6Vb1Mc3Pd5Fh7Gj0' };
export const AWS_KEY_ENV = { PORT_BENCH_AWS_KEY_ID: PORT_AWS_USER.accessKeyId, PORT_BENCH_AWS_SECRET: PORT_AWS_USER.secretAccessKey };

/** A session policy template with two `${claim}` placeholders, as test/aws uses. */
export const SESSION_POLICY_TEMPLATE = `{
  "Version": "2012-10-17",
  "Statement": [
    { "Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::artifacts/\${pipeline_slug}/\${build_branch}/*" },
    { "Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::artifacts", "Condition": { "StringLike": { "s3:prefix": "\${aws:PrincipalTag/pipeline}/*" } } }
  ]
}
`;

export const SESSION_TAGS = { pipeline: 'pipeline_slug', build: 'build_number' };

/** The STS simulator's IAM: Port's user, one role per mode, and the baseline's role. */
export function stsIam() {
  return {
    users: [PORT_AWS_USER],
    roles: [
      { name: 'deploy-web', maxSessionDuration: 3600, trust: { webIdentity: { provider: 'port.acme.test', audience: WEB_IDENTITY_AUDIENCE, subjectLike: 'organization:acme:pipeline:deploy:*' } } },
      { name: 'deploy-keys', maxSessionDuration: 7200, trust: { users: ['port'] } },
      { name: 'baseline-web', maxSessionDuration: 3600, trust: { webIdentity: { provider: 'baseline.acme.test', audience: WEB_IDENTITY_AUDIENCE, subjectLike: 'organization:acme:pipeline:deploy:*' } } },
    ],
    oidcProviders: [
      { url: PUBLIC_URL, clientIds: [WEB_IDENTITY_AUDIENCE] },
      { url: BASELINE_ISSUER, clientIds: [WEB_IDENTITY_AUDIENCE] },
    ],
  };
}

/** Credentials the reusable Port tokens hold (one job each, asked again and again). */
export const REUSED_SCOPE = ['secret-file', 'secret-command', 'secret-command-cached', 'svc-token', 'aws-web'];
/**
 * Credentials the single-use Port tokens hold: Port keeps a job's AWS session and hands
 * it out again (src/broker/credentials/aws-session-cache.ts), so a row that should call
 * STS on every request needs a new job per request. `aws-web-direct` is `aws-web` under
 * another name, so the same job gets a fresh session of it too.
 */
export const FRESH_SCOPE = ['aws-web', 'aws-keys', 'aws-web-direct'];

/** `credentials:` for port.yaml. */
export function portCredentials({ secretFile, policyFile, stsUrl, roleArn, stsConcurrency }) {
  const web = {
    type: 'aws_role',
    role_arn: roleArn('deploy-web'),
    sts_endpoint: stsUrl,
    duration: '30m',
    session_tags: SESSION_TAGS,
    transitive_tag_keys: ['pipeline'],
    session_policy: policyFile,
    sts_concurrency: stsConcurrency,
  };
  return {
    'secret-file': { type: 'secret', value: `file:${secretFile}` },
    'secret-command': { type: 'secret', value: `command:${secretCommand(secretFile)}` },
    'secret-command-cached': { type: 'secret', value: `command:${secretCommand(secretFile)}`, cache_for: '60s' },
    'svc-token': { type: 'port_token', audience: 'https://svc.acme.test' },
    'aws-web': web,
    'aws-web-direct': { ...web },
    'aws-keys': {
      ...web,
      mode: 'assume_role',
      role_arn: roleArn('deploy-keys'),
      region: 'eu-west-1',
      access_key_id: 'env:PORT_BENCH_AWS_KEY_ID',
      secret_access_key: 'env:PORT_BENCH_AWS_SECRET',
    },
  };
}

/** The secret command: one exec of an external program (through /bin/sh -c, as Port runs it). */
export function secretCommand(secretFile) {
  return `cat ${secretFile}`;
}

/** Jobs of acme may hold a Port token; jobs of acme/deploy may assume every credential. */
export const POLICIES = {
  'bench.cedar': `
@id("acme-jobs-exchange")
@reason("jobs of acme may hold a Port token")
permit (principal, action == Port::Action::"exchange", resource == Port::Organization::"acme");

@id("deploy-credentials")
@reason("the deploy pipeline may assume the bench credentials")
permit (principal, action == Port::Action::"assume", resource)
when { principal.pipeline_slug == "deploy" };
`,
};

/** The job identity claims of a Port token (src/issuer/port-token.ts identityClaims), for the baselines to sign. */
export const JOB_CLAIM_KEYS = [
  'organization_slug', 'pipeline_slug', 'build_number', 'build_branch', 'build_tag', 'build_commit', 'step_key', 'job_id', 'agent_id',
  'build_source', 'runner_environment', 'organization_id', 'pipeline_id', 'build_id', 'cluster_id', 'cluster_name', 'queue_id', 'queue_key',
];

export function jobClaims(payload) {
  return Object.fromEntries(JOB_CLAIM_KEYS.filter((k) => payload[k] !== undefined).map((k) => [k, payload[k]]));
}

/**
 * CPU time (user + system, ms, 10 ms ticks) of this process's children: those that have
 * exited and been reaped (cutime + cstime in /proc/self/stat), plus those still running
 * and what they reaped (Port's long-lived command runner spawns the commands a secret runs).
 */
export function childrenCpuMs() {
  try {
    const fields = (pid) => {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      return stat.slice(stat.lastIndexOf(')') + 2).split(' ').map(Number);
    };
    const own = fields('self');
    let ticks = own[13] + own[14];
    for (const tid of readdirSync('/proc/self/task')) {
      for (const pid of readFileSync(`/proc/self/task/${tid}/children`, 'utf8').split(' ').filter(Boolean)) {
        try {
          const f = fields(pid);
          ticks += f[11] + f[12] + f[13] + f[14];
        } catch {
          // Exited meanwhile: counted in cutime once reaped.
        }
      }
    }
    return ticks * 10;
  } catch {
    return NaN;
  }
}

/**
 * Busy and idle time (ms, 10 ms ticks) of one CPU since boot, from /proc/stat: busy is
 * user + nice + system + irq + softirq + steal; idle is idle + iowait. Undefined where
 * /proc/stat is missing.
 */
export function cpuTimes(cpu) {
  try {
    const line = readFileSync('/proc/stat', 'utf8')
      .split('\n')
      .find((l) => l.startsWith(`cpu${cpu} `));
    const [user, nice, system, idle, iowait, irq, softirq, steal] = line.trim().split(/\s+/).slice(1).map(Number);
    return { busy: (user + nice + system + irq + softirq + (steal || 0)) * 10, idle: (idle + iowait) * 10 };
  } catch {
    return undefined;
  }
}
