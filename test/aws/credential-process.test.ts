import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { fromProcess } from '@aws-sdk/credential-providers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PORT_BIN } from '../helpers/spawn-port.js';
import { startAwsHarness, type AwsHarness } from './aws-harness.js';

/**
 * `credential_process = port creds <name>` consumed by the real AWS SDK process provider
 * (AWS CLI "Sourcing credentials with an external process"). Needs dist/ (npx tsc -p tsconfig.json).
 */
describe('port creds as an AWS credential_process', () => {
  let h: AwsHarness;
  let dir: string;
  let configFile: string;
  beforeAll(async () => {
    h = await startAwsHarness();
    dir = mkdtempSync(join(tmpdir(), 'port-aws-profile-'));
    configFile = join(dir, 'config');
    writeFileSync(
      configFile,
      `[profile ci]\ncredential_process = ${process.execPath} ${PORT_BIN} creds aws-web --url ${h.url}\n\n[profile broken]\ncredential_process = ${process.execPath} ${PORT_BIN} creds aws-queue-tag --url ${h.url}\n`,
    );
  });
  afterAll(async () => {
    delete process.env.PORT_TOKEN;
    await h.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('the SDK runs port creds, gets the job\'s session and GetCallerIdentity answers the job\'s assumed-role ARN', async () => {
    const job = h.sim.createJob({ pipelineSlug: 'deploy', branch: 'main' });
    const exchanged = await h.exchange(await h.sim.mintToken(job, { audience: h.audience }), { scope: 'aws-web' });
    // fromProcess runs the command with this process's environment, as the AWS CLI would in a job.
    process.env.PORT_TOKEN = exchanged.body.access_token;
    const credentials = fromProcess({ profile: 'ci', configFilepath: configFile, filepath: join(dir, 'no-credentials-file') });
    const resolved = await credentials();
    expect(resolved.accessKeyId).toMatch(/^ASIA/);
    expect(resolved.sessionToken).toBeTruthy();
    expect(resolved.expiration!.getTime()).toBeGreaterThan(Date.now() + 1700_000);
    const sts = new STSClient({ region: 'us-east-1', endpoint: h.sts.url, credentials, maxAttempts: 1 });
    const who = await sts.send(new GetCallerIdentityCommand({}));
    expect(who.Arn).toBe(`arn:aws:sts::123456789012:assumed-role/deploy-web/bk-deploy-${job.buildNumber}-${job.jobId}`);
  });

  it('a refusal reaches the SDK as an error, never as empty credentials', async () => {
    process.env.PORT_TOKEN = await h.portToken('aws-queue-tag');
    const credentials = fromProcess({ profile: 'broken', configFilepath: configFile, filepath: join(dir, 'no-credentials-file') });
    await expect(credentials()).rejects.toThrow();
  });
});
