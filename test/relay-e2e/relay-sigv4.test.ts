import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jtiHash } from '../../src/audit/token-hash.js';
import { startHarness, TEST_POLICIES, type Harness } from '../helpers/port-harness.js';
import { rawRequestUrl } from '../helpers/relay/raw-http.js';
import { AwsServiceSimulator, AwsSimError, StsSimulator } from '../../src/sim/aws-sts/index.js';

const POLICIES: Record<string, string> = {
  ...TEST_POLICIES,
  'relay.cedar': `
@id("aws-upstreams")
@reason("acme jobs may call the API and the bucket")
permit (principal is Port::Job, action == Port::Action::"proxy", resource)
when { resource == Port::Upstream::"api" || resource == Port::Upstream::"bucket" || resource == Port::Upstream::"bucket-meta" || resource == Port::Upstream::"queue-api" };

@id("dynamo-reads-only")
@reason("acme jobs may read items, nothing else")
permit (principal is Port::Job, action == Port::Action::"proxy", resource == Port::Upstream::"dynamo")
when { context has aws_target && context.aws_target == "DynamoDB_20120810.GetItem" };

@id("artifacts-put")
@reason("deploy jobs may upload under artifacts/deploy/")
permit (principal is Port::Job, action == Port::Action::"proxy", resource)
when { (resource == Port::Upstream::"artifacts" || resource == Port::Upstream::"artifacts-acl") && context.method == "PUT" && context.path like "/artifacts/deploy/*" };

@id("artifacts-list")
@reason("jobs may list the artifacts bucket (ListObjectsV2 and its paging parameters only)")
permit (principal is Port::Job, action == Port::Action::"proxy", resource == Port::Upstream::"artifacts")
when {
  context.method == "GET" && context.path == "/artifacts" && context has aws_query_keys &&
  context.aws_query_keys.contains("list-type") &&
  ["list-type", "prefix", "delimiter", "continuation-token", "max-keys"].containsAll(context.aws_query_keys)
};

@id("acl-only-for-release")
@reason("only the release pipeline may set object ACLs")
forbid (principal is Port::Job, action == Port::Action::"proxy", resource == Port::Upstream::"artifacts-acl")
when { context has aws_query_keys && context.aws_query_keys.contains("acl") }
unless { principal.pipeline_slug == "release" };

@id("aws-api-credential")
@reason("jobs may also take the API's credential themselves")
permit (principal is Port::Job, action == Port::Action::"assume", resource == Port::Credential::"aws-api");
`,
};

/**
 * `inject: { aws_sigv4: … }`: the relay signs each request with the calling job's own STS
 * session; the simulated AWS service verifies the signature with the session the STS
 * simulator issued, exactly as AWS would.
 */
describe('relay: SigV4 signing with the job\'s own AWS session', () => {
  let sts: StsSimulator;
  let api: AwsServiceSimulator;
  let s3: AwsServiceSimulator;
  let dynamo: AwsServiceSimulator;
  let h: Harness;

  beforeAll(async () => {
    sts = await StsSimulator.start({
      roles: [{ name: 'api-caller', trust: { webIdentity: { provider: 'port.acme.test', audience: 'sts.amazonaws.com', subjectLike: 'organization:acme:*' } } }],
      oidcProviders: [{ url: 'https://port.acme.test', clientIds: ['sts.amazonaws.com'] }],
    });
    api = await AwsServiceSimulator.start(sts, { service: 'execute-api' });
    s3 = await AwsServiceSimulator.start(sts, { service: 's3' });
    dynamo = await AwsServiceSimulator.start(sts, { service: 'dynamodb' });
    const cred = { type: 'aws_role', role_arn: sts.roleArn('api-caller'), sts_endpoint: sts.url, duration: '1h', session_tags: { pipeline: 'pipeline_slug' } };
    h = await startHarness({
      policies: POLICIES,
      config: {
        credentials: { 'aws-api': cred, 'aws-queue': { ...cred, session_tags: { queue: 'queue_key' } } },
        upstreams: {
          api: { url: `${api.url}/prod`, timeout: 5, max_body: '64KiB', inject: { aws_sigv4: { service: 'execute-api', region: 'us-east-1', credential: 'aws-api' } } },
          bucket: { url: s3.url, timeout: 5, inject: { aws_sigv4: { service: 's3', region: 'eu-west-1', credential: 'aws-api' } } },
          'queue-api': { url: api.url, timeout: 5, inject: { aws_sigv4: { service: 'execute-api', region: 'us-east-1', credential: 'aws-queue' } } },
          'bucket-meta': {
            url: s3.url,
            timeout: 5,
            inject: { aws_sigv4: { service: 's3', region: 'eu-west-1', credential: 'aws-api', forward_headers: ['X-Amz-Meta-*', 'x-amz-copy-source'] } },
          },
          dynamo: { url: dynamo.url, timeout: 5, inject: { aws_sigv4: { service: 'dynamodb', region: 'us-east-1', credential: 'aws-api', forward_headers: ['x-amz-target'] } } },
          artifacts: { url: s3.url, timeout: 5, inject: { aws_sigv4: { service: 's3', region: 'eu-west-1', credential: 'aws-api' } } },
          'artifacts-acl': { url: s3.url, timeout: 5, inject: { aws_sigv4: { service: 's3', region: 'eu-west-1', credential: 'aws-api', allow_subresources: ['acl'] } } },
        },
      },
    });
    sts.setOriginOverride('https://port.acme.test', h.url);
  });
  afterAll(async () => {
    await h.close();
    await Promise.all([api.close(), s3.close(), dynamo.close(), sts.close()]);
  });

  const jobToken = async (pipelineSlug = 'deploy', extra: Record<string, string> = {}) => {
    const job = h.sim.createJob({ pipelineSlug, branch: 'main' });
    const res = await h.exchange(await h.sim.mintToken(job, { audience: h.audience }), extra);
    expect(res.status).toBe(200);
    return { job, token: res.body.access_token as string };
  };
  const relay = (path: string, token: string, init: RequestInit = {}) =>
    fetch(`${h.url}/relay${path}`, { ...init, headers: { authorization: `Bearer ${token}`, ...(init.headers as Record<string, string>) } });

  it('a GET arrives signed with the job\'s session: path as forwarded, query, host and the security token', async () => {
    const { job, token } = await jobToken();
    const res = await relay('/api/items/a%20b/c?y=two%2Bthree&x=1&x=0', token, {
      // A caller's own SigV4 headers never pass: the relay replaces them with its signature.
      headers: { 'x-amz-security-token': 'caller-forged', 'x-amz-date': '20000101T000000Z', 'x-amz-meta-note': 'dropped: api forwards no x-amz-* header' },
    });
    expect(res.status).toBe(200);
    const seen = await res.json();
    expect(seen).toMatchObject({
      outcome: 'ok',
      method: 'GET',
      url: '/prod/items/a%20b/c?y=two%2Bthree&x=1&x=0',
      callerArn: `arn:aws:sts::123456789012:assumed-role/api-caller/bk-deploy-${job.buildNumber}-${job.jobId}`,
      tags: [{ Key: 'pipeline', Value: 'deploy' }],
    });
    expect(seen.signedHeaders).toEqual(expect.arrayContaining(['host', 'x-amz-date', 'x-amz-security-token', 'x-amz-content-sha256']));
    expect(seen.headerNames).not.toContain('x-amz-meta-note');
    const call = sts.succeeded('AssumeRoleWithWebIdentity').at(-1)!;
    expect(call.sessionName).toBe(`bk-deploy-${job.buildNumber}-${job.jobId}`);
    // Capped by the caller's 15-minute Port token, not the credential's 1h.
    expect(call.duration).toBe(900);
  });

  it('a POST body is hashed into the signature (the service recomputes it)', async () => {
    const { token } = await jobToken();
    const body = JSON.stringify({ deploy: 'v1.2.3', items: Array.from({ length: 200 }, (_, i) => i) });
    const res = await relay('/api/deployments', token, { method: 'POST', body, headers: { 'content-type': 'application/json' } });
    expect(res.status).toBe(200);
    const seen = await res.json();
    expect(seen.outcome).toBe('ok');
    expect(seen.bodyBytes).toBe(Buffer.byteLength(body));
    expect(seen.payloadHash).toBe(seen.bodySha256);
    expect(seen.signedHeaders).toContain('content-type');
  });

  it('S3 gets UNSIGNED-PAYLOAD with the body streamed', async () => {
    const { token } = await jobToken();
    const body = Buffer.alloc(300_000, 7);
    const res = await relay('/bucket/artifacts/build%201/out.bin?x-id=PutObject', token, { method: 'PUT', body });
    expect(res.status).toBe(200);
    const seen = await res.json();
    expect(seen).toMatchObject({ outcome: 'ok', payloadHash: 'UNSIGNED-PAYLOAD', bodyBytes: 300_000, url: '/artifacts/build%201/out.bin?x-id=PutObject' });
  });

  it('one session per job, reused across its requests; a second job gets a different session', async () => {
    const a = await jobToken();
    const b = await jobToken();
    const before = sts.succeeded('AssumeRoleWithWebIdentity').length;
    const seenA1 = await (await relay('/api/one', a.token)).json();
    const seenA2 = await (await relay('/api/two', a.token)).json();
    const seenB = await (await relay('/api/one', b.token)).json();
    expect(sts.succeeded('AssumeRoleWithWebIdentity').length - before).toBe(2);
    expect(seenA1.accessKeyId).toBe(seenA2.accessKeyId);
    expect(seenB.accessKeyId).not.toBe(seenA1.accessKeyId);
    expect(seenA1.sessionName).toContain(a.job.jobId);
    expect(seenB.sessionName).toContain(b.job.jobId);
    // Each session is one `assume` record naming the job and its Port token's hash (lineage links by it).
    const assumed = (await h.port.store.decisions.read(0, 100_000))
      .map((e) => e.record)
      .filter((r) => r.action === 'assume' && (r.context as { relay?: unknown }).relay !== undefined && r.principal === `Port::Job::"${a.job.jobId}"`);
    expect(assumed).toHaveLength(1);
    const ctx = assumed[0]!.context as { job: { job_id: string }; port_token: { jti_sha256: string }; credential: { session_name: string } };
    expect(ctx.job.job_id).toBe(a.job.jobId);
    expect(ctx.port_token.jti_sha256).toBe(jtiHash(JSON.parse(Buffer.from(a.token.split('.')[1]!, 'base64url').toString()).jti));
    expect(ctx.credential.session_name).toBe(seenA1.sessionName);
    expect(JSON.stringify(assumed[0])).not.toContain(a.token);
  });

  it('a revoked job is refused before anything is signed', async () => {
    const { token } = await jobToken();
    expect((await relay('/api/x', token)).status).toBe(200);
    const served = api.requests.length;
    expect((await h.post('/oauth/revoke', { token })).status).toBe(200);
    const res = await relay('/api/x', token);
    expect(res.status).toBe(401);
    expect(api.requests.length).toBe(served);
  });

  it('STS failing answers 503 credential_unavailable as JSON, with no credential in it; the next request retries', async () => {
    const { token } = await jobToken();
    sts.failWith = new AwsSimError('ServiceUnavailable', 'simulated outage', 503, 'Receiver');
    try {
      const res = await relay('/api/x', token);
      expect(res.status).toBe(503);
      const body = await res.json();
      expect(body.error).toBe('credential_unavailable');
      expect(body.error_description).toMatch(/AssumeRoleWithWebIdentity/);
    } finally {
      sts.failWith = undefined;
    }
    expect((await relay('/api/x', token)).status).toBe(200);
  });

  it('a job lacking a claim the session tags need is refused with the tag and claim named', async () => {
    const { token } = await jobToken();
    const res = await relay('/queue-api/x', token);
    expect(res.status).toBe(400);
    const body = await res.json();
    expect(body).toMatchObject({ error: 'invalid_request' });
    expect(body.error_description).toContain('queue_key');
  });

  it('a body over the route\'s limit is refused with 413 before it is buffered or signed', async () => {
    const { token } = await jobToken();
    const served = api.requests.length;
    const res = await relay('/api/big', token, { method: 'POST', body: Buffer.alloc(70 * 1024, 1) });
    expect(res.status).toBe(413);
    expect((await res.json()).error).toBe('body_too_large');
    expect(api.requests.length).toBe(served);
  });
  it('caller x-amz-* headers that change the S3 operation are dropped by default (CopyObject, ACLs, redirects)', async () => {
    const { token } = await jobToken();
    const res = await relay('/bucket/artifacts/deploy/x', token, {
      method: 'PUT',
      body: 'content',
      headers: {
        'x-amz-copy-source': '/prod-secrets/db.env',
        'x-amz-copy-source-if-match': '"etag"',
        'x-amz-acl': 'public-read',
        'x-amz-grant-read': 'uri="http://acs.amazonaws.com/groups/global/AllUsers"',
        'x-amz-website-redirect-location': 'https://evil.example',
        x_amz_copy_source: '/prod-secrets/db.env',
        'x-amz-meta-note': 'not listed either',
      },
    });
    expect(res.status).toBe(200);
    const seen = await res.json();
    expect(seen.outcome).toBe('ok');
    expect(seen.headerNames.filter((n: string) => n.replaceAll('_', '-').startsWith('x-amz-')).sort()).toEqual(['x-amz-content-sha256', 'x-amz-date', 'x-amz-security-token']);
  });

  it('headers an upstream lists in forward_headers (names or -* families) are forwarded and signed; the rest still dropped', async () => {
    const { token } = await jobToken();
    const res = await relay('/bucket-meta/artifacts/deploy/x', token, {
      method: 'PUT',
      body: 'content',
      headers: { 'x-amz-meta-note': 'kept', 'x-amz-meta-build': '42', 'x-amz-copy-source': '/artifacts/deploy/y', 'x-amz-acl': 'public-read' },
    });
    expect(res.status).toBe(200);
    const seen = await res.json();
    expect(seen.signedHeaders).toEqual(expect.arrayContaining(['x-amz-meta-note', 'x-amz-meta-build', 'x-amz-copy-source']));
    expect(seen.headerNames).not.toContain('x-amz-acl');
  });

  it('X-Amz-Target is dropped by default (the caller can\'t pick a JSON-protocol operation)', async () => {
    const { token } = await jobToken();
    const res = await relay('/api/', token, { method: 'POST', body: '{}', headers: { 'x-amz-target': 'DynamoDB_20120810.DeleteTable' } });
    expect(res.status).toBe(200);
    const seen = await res.json();
    expect(seen.target).toBeUndefined();
    expect(seen.headerNames).not.toContain('x-amz-target');
  });

  it('a forwarded X-Amz-Target is part of the proxy decision (context.aws_target): a policy allowing GetItem refuses DeleteTable', async () => {
    const { token } = await jobToken();
    const call = (target?: string) =>
      relay('/dynamo/', token, { method: 'POST', body: '{"TableName":"deploys"}', headers: { 'content-type': 'application/x-amz-json-1.0', ...(target ? { 'x-amz-target': target } : {}) } });
    const ok = await call('DynamoDB_20120810.GetItem');
    expect(ok.status).toBe(200);
    expect((await ok.json()).target).toBe('DynamoDB_20120810.GetItem');
    const served = dynamo.requests.length;
    // Same token, method and path right after an allow: the decision cache must not answer for another target.
    const denied = await call('DynamoDB_20120810.DeleteTable');
    expect(denied.status).toBe(403);
    expect((await denied.json()).error).toBe('access_denied');
    const id = denied.headers.get('x-port-decision-id');
    const record = (await h.port.store.decisions.read(0, 10_000)).map((e) => e.record).find((r) => r.id === id)!;
    expect(record.context).toMatchObject({ upstream: 'dynamo', method: 'POST', path: '/', aws_target: 'DynamoDB_20120810.DeleteTable' });
    const none = await call();
    expect(none.status).toBe(403);
    await none.body?.cancel();
    const malformed = await call('DynamoDB_20120810.GetItem, DynamoDB_20120810.DeleteTable');
    expect(malformed.status).toBe(400);
    expect((await malformed.json()).error).toBe('invalid_request');
    expect(dynamo.requests.length).toBe(served);
  });

  it('X-Amz-Target sent twice is refused before policy (the service must run the operation decided)', async () => {
    const { token } = await jobToken();
    const served = dynamo.requests.length;
    const body = '{}';
    const r = await rawRequestUrl(
      h.url,
      `POST /relay/dynamo/ HTTP/1.1\r\nHost: port\r\nAuthorization: Bearer ${token}\r\nX-Amz-Target: DynamoDB_20120810.GetItem\r\nX-Amz-Target: DynamoDB_20120810.DeleteTable\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
      { expectResponses: 1 },
    );
    expect(r.responses[0]!.status).toBe(400);
    expect(JSON.parse(r.responses[0]!.body).error).toBe('invalid_request');
    expect(dynamo.requests.length).toBe(served);
  });

  it('the relay and POST /v1/credentials share the job\'s session: one STS call for both', async () => {
    const { token } = await jobToken('deploy', { scope: 'aws-api' });
    const before = sts.calls.length;
    const cred = await fetch(`${h.url}/v1/credentials/aws-api`, { method: 'POST', headers: { authorization: `Bearer ${token}` } });
    expect(cred.status).toBe(200);
    const { AccessKeyId } = await cred.json();
    const seen = await (await relay('/api/shared', token)).json();
    expect(seen.accessKeyId).toBe(AccessKeyId);
    expect(sts.calls.length - before).toBe(1);
  });
  describe('the query names the S3 operation', () => {
    const decisionRecord = async (id: string | null) => (await h.port.store.decisions.read(0, 10_000)).map((e) => e.record).find((r) => r.id === id)!;

    it('a policy allowing PUT on a path refuses the same PUT with ?acl (and every spelling of it), before anything is signed or sent', async () => {
      const { token } = await jobToken();
      const put = (query: string, method = 'PUT') => relay(`/artifacts/artifacts/deploy/x${query}`, token, { method, body: '<AccessControlPolicy/>' });
      const ok = await put('');
      expect(ok.status).toBe(200);
      expect((await ok.json()).url).toBe('/artifacts/deploy/x');
      const served = s3.requests.length;
      // Same token, method and path right after an allow: the decision cache must not answer.
      for (const query of ['?acl', '?acl=', '?ACL', '?%61cl', '?x-id=PutObjectAcl&acl', '?tagging', '?retention', '?legal-hold', '?policy']) {
        const res = await put(query);
        expect(res.status, query).toBe(403);
        const body = await res.json();
        expect(body.error, query).toBe('subresource_not_allowed');
        expect(body.error_description).toMatch(/^The S3 sub-resource \?[A-Za-z-]+ is not allowed on this upstream/);
      }
      // Multi-object delete names its keys in the body, outside any path a policy sees.
      const del = await relay('/artifacts/artifacts?delete', token, { method: 'POST', body: '<Delete><Object><Key>prod/db.env</Key></Object></Delete>' });
      expect(del.status).toBe(403);
      expect((await del.json()).error).toBe('subresource_not_allowed');
      expect(s3.requests.length).toBe(served);
    });

    it('x-amz-* query parameters (S3 reads them as headers, bypassing forward_headers) are refused on every SigV4 upstream', async () => {
      const { token } = await jobToken();
      const served = s3.requests.length + api.requests.length;
      for (const path of ['/artifacts/artifacts/deploy/x?x-amz-acl=public-read', '/artifacts/artifacts/deploy/x?X-Amz-Grant-Read=uri%3Devil', '/bucket-meta/artifacts/deploy/x?x-amz-copy-source=/prod/db.env', '/api/x?X-Amz-Security-Token=forged']) {
        const res = await relay(path, token, { method: 'PUT', body: 'x' });
        expect(res.status, path).toBe(400);
        const body = await res.json();
        expect(body.error).toBe('invalid_request');
        expect(body.error_description).toMatch(/x-amz-\* parameter/);
        expect(JSON.stringify(body)).not.toMatch(/public-read|evil|forged/);
      }
      expect(s3.requests.length + api.requests.length).toBe(served);
    });

    it('the query names are context.aws_query_keys: a policy allows ?list-type=2 listing and refuses any other key; values are never logged', async () => {
      const { token } = await jobToken();
      const list = await relay('/artifacts/artifacts?list-type=2&prefix=deploy%2F&max-keys=10', token);
      expect(list.status).toBe(200);
      expect((await list.json()).url).toBe('/artifacts?list-type=2&prefix=deploy%2F&max-keys=10');
      const served = s3.requests.length;
      // Right after the allow, same token, method and path: another key set is decided again.
      const versions = await relay('/artifacts/artifacts?list-type=2&versions&prefix=secret-prefix-value', token);
      expect(versions.status).toBe(403);
      expect((await versions.json()).error).toBe('access_denied');
      const record = await decisionRecord(versions.headers.get('x-port-decision-id'));
      expect(record.context).toMatchObject({ upstream: 'artifacts', method: 'GET', path: '/artifacts', aws_query_keys: ['list-type', 'prefix', 'versions'] });
      expect(JSON.stringify(record)).not.toContain('secret-prefix-value');
      // No list-type, or no query at all: ListObjects v1 and versions are not what the policy allows.
      for (const path of ['/artifacts/artifacts?versions', '/artifacts/artifacts', '/artifacts/artifacts?List-Type=2&uploads']) {
        const res = await relay(path, token);
        expect(res.status, path).toBe(403);
        await res.body?.cancel();
      }
      // Names are decoded and lower-cased as AWS reads them, so a spelling can't dodge the policy.
      const spelled = await relay('/artifacts/artifacts?List-Type=2&%50refix=x', token);
      expect(spelled.status).toBe(200);
      await spelled.body?.cancel();
      expect(s3.requests.length).toBe(served + 1);
      const malformed = await relay('/artifacts/artifacts?list-type=2&%zz', token);
      expect(malformed.status).toBe(400);
      expect((await malformed.json()).error).toBe('invalid_request');
    });

    it('allow_subresources lets a guarded sub-resource through to policy, which decides on it; the others stay refused', async () => {
      const deploy = await jobToken('deploy');
      const release = await jobToken('release');
      const putAcl = (token: string, pipeline: string) =>
        relay(`/artifacts-acl/artifacts/deploy/${pipeline}?acl`, token, { method: 'PUT', body: '<AccessControlPolicy/>', headers: { 'content-type': 'application/xml' } });
      const denied = await putAcl(deploy.token, 'deploy');
      expect(denied.status).toBe(403);
      expect((await denied.json()).error).toBe('access_denied');
      expect((await decisionRecord(denied.headers.get('x-port-decision-id'))).policies).toEqual([expect.objectContaining({ id: 'acl-only-for-release' })]);
      const allowed = await putAcl(release.token, 'release');
      expect(allowed.status).toBe(200);
      const seen = await allowed.json();
      expect(seen).toMatchObject({ outcome: 'ok', url: '/artifacts/deploy/release?acl' });
      const other = await relay('/artifacts-acl/artifacts/deploy/x?policy', release.token, { method: 'PUT', body: '{}' });
      expect(other.status).toBe(403);
      expect((await other.json()).error).toBe('subresource_not_allowed');
    });

    it('on other services the query is not guarded but still reaches policy as aws_query_keys', async () => {
      const { token } = await jobToken();
      const res = await relay('/api/items?acl&Action=List', token);
      expect(res.status).toBe(200);
      expect((await res.json()).url).toBe('/prod/items?acl&Action=List');
    });
  });
});
