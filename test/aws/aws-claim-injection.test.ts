import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAwsHarness, type AwsHarness } from './aws-harness.js';

/**
 * A Buildkite branch (and tag, step key, commit) is free text through the API and the UI,
 * so a job's claims must not reshape what AWS is asked for (IAM policy wildcards and
 * variables; the `:`-separated compound `sub`).
 * aws-web renders `arn:aws:s3:::artifacts/${pipeline_slug}/${build_branch}/*`;
 * aws-web-plain has no session policy (only the web identity token's sub is made from the job).
 */
describe('aws_role: job claims that would widen IAM patterns or make the sub ambiguous are refused', () => {
  let h: AwsHarness;
  beforeAll(async () => {
    h = await startAwsHarness();
  });
  afterAll(() => h.close());

  /** The release is refused with 400 invalid_request and STS is never called. */
  async function refused(credential: string, job: Parameters<AwsHarness['portToken']>[1]): Promise<string> {
    const before = h.sts.calls.length;
    const res = await h.credential(credential, await h.portToken(credential, job));
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('invalid_request');
    expect(h.sts.calls.length).toBe(before);
    return res.body.error_description as string;
  }

  it('branch "*" would widen the session policy to every branch\'s objects; refused naming placeholder, claim and character', async () => {
    const description = await refused('aws-web', { branch: '*' });
    expect(description).toContain('${build_branch}');
    expect(description).toContain('U+002A');
    // The job's value itself never appears (only the code point).
    expect(description).not.toMatch(/\*/);
  });

  it('IAM wildcards and policy variables in a placeholder value are refused', async () => {
    for (const [branch, codePoint] of [
      ['?ain', 'U+003F'],
      ['${aws:username}', 'U+0024'],
      ['main{x}', 'U+007B'],
      ['feature/a b', 'U+0020'],
      ['main\u202egnp', 'U+202E'],
      ['mäin', 'U+00E4'],
    ] as const) {
      const description = await refused('aws-web', { branch });
      expect(description).toContain(codePoint);
      expect(description).not.toContain(branch);
    }
  });

  it('an empty placeholder value is refused like a missing one (`…/${claim}*` would become `…/*`)', async () => {
    const description = await refused('aws-web', { branch: '' });
    expect(description).toContain('${build_branch}');
  });

  it('branch names git allows render as themselves', async () => {
    for (const branch of ['dependabot/npm_and_yarn/lodash-4.17.21', 'renovate/@types-node-20.x', 'fix/#123=a+b,c']) {
      const res = await h.credential('aws-web', await h.portToken('aws-web', { branch }));
      expect(res.status).toBe(200);
      const policy = JSON.parse(h.sts.succeeded('AssumeRoleWithWebIdentity').at(-1)!.policy!);
      expect(policy.Statement[0].Resource).toBe(`arn:aws:s3:::artifacts/deploy/${branch}/*`);
    }
  });

  it('session tag values with wildcards or policy variables are refused too (AWS\'s tag charset has none of * ? $ { })', async () => {
    for (const branch of ['main*', '${aws:username}', 'ma?n']) {
      const description = await refused('aws-keys', { branch });
      expect(description).toMatch(/Session tag branch: the value of job claim build_branch/);
      expect(description).not.toContain(branch);
    }
  });

  it('branch "main:commit:evil" would give a sub matching `…:ref:refs/heads/main:*`; refused before STS', async () => {
    // The attack on aws-web (its session policy refuses ":" first)…
    expect(await refused('aws-web', { branch: 'main:commit:evil' })).toContain('${build_branch}');
    // …and on a credential whose only job-made input is the sub.
    const description = await refused('aws-web-plain', { branch: 'main:commit:evil' });
    expect(description).toContain('build_branch');
    expect(description).toContain('U+003A');
    expect(description).toContain('sub');
    expect(description).not.toContain('evil');
  });

  it('":" "*" "?" in the tag, the step key or the commit are refused, naming the claim', async () => {
    expect(await refused('aws-web-plain', { branch: 'main', tag: 'v1:x' })).toContain('build_tag');
    expect(await refused('aws-web-plain', { stepKey: 'deploy:prod' })).toContain('step_key');
    expect(await refused('aws-web-plain', { stepKey: 'deploy*' })).toContain('step_key');
    expect(await refused('aws-web-plain', { commit: 'HEAD?' })).toContain('build_commit');
  });

  it('ordinary branches, tags and step keys still assume the role, with Buildkite\'s sub', async () => {
    const job = await h.portToken('aws-web-plain', { branch: 'release/2.0', stepKey: 'deploy-prod' });
    const res = await h.credential('aws-web-plain', job);
    expect(res.status).toBe(200);
    const claims = h.sts.succeeded('AssumeRoleWithWebIdentity').at(-1)!.webIdentityClaims!;
    expect(claims.sub).toMatch(/^organization:acme:pipeline:deploy:ref:refs\/heads\/release\/2\.0:commit:[0-9a-f]{40}:step:deploy-prod$/);
  });

  it('assume_role mode has no sub; a ":" in a tag value stays allowed there (AWS allows it)', async () => {
    const res = await h.credential('aws-keys', await h.portToken('aws-keys', { branch: 'main:x' }));
    expect(res.status).toBe(200);
    expect(h.sts.succeeded('AssumeRole').at(-1)!.tags).toContainEqual({ Key: 'branch', Value: 'main:x' });
  });
});
