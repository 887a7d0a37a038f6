import { startHarness, TEST_POLICIES, type Harness } from './port-harness.js';
import { startRecordingUpstream, type RecordingUpstream, type RecordingUpstreamOptions } from './relay/recording-upstream.js';

/** Policies for relay tests: reads anywhere on `files`, writes only under /uploads, nothing under /admin. */
export const RELAY_POLICIES: Record<string, string> = {
  ...TEST_POLICIES,
  'relay.cedar': `
@id("files-read")
@reason("acme jobs may read the file store")
permit (principal is Port::Job, action == Port::Action::"proxy", resource == Port::Upstream::"files")
when { context.method == "GET" || context.method == "HEAD" };

@id("files-upload")
@reason("deploy jobs may upload under /uploads")
permit (principal is Port::Job, action == Port::Action::"proxy", resource == Port::Upstream::"files")
when { principal.pipeline_slug == "deploy" && (context.method == "PUT" || context.method == "POST") && context.path like "/uploads/*" };

@id("no-admin")
@reason("nobody reaches the admin area through the relay")
forbid (principal, action == Port::Action::"proxy", resource)
when { context.path like "/admin*" };
`,
};

export interface RelayHarness extends Harness {
  upstream: RecordingUpstream;
  /** A Port token for a job (defaults: acme/deploy on main). */
  token(init?: Record<string, unknown>): Promise<string>;
  relayUrl(path: string): string;
}

export const UPSTREAM_SECRET = 'upstream-secret-value-never-seen-by-agents';

export async function startRelayHarness(
  opts: { upstream?: RecordingUpstreamOptions; upstreams?: (up: RecordingUpstream) => Record<string, unknown>; relay?: Record<string, unknown>; policies?: Record<string, string> } = {},
): Promise<RelayHarness> {
  const upstream = await startRecordingUpstream(opts.upstream);
  process.env.PORT_TEST_UPSTREAM_SECRET = UPSTREAM_SECRET;
  const h = await startHarness({
    policies: opts.policies ?? RELAY_POLICIES,
    config: {
      relay: { decision_cache_ttl: 5, allow_log_window: 3600, ...opts.relay },
      upstreams: opts.upstreams?.(upstream) ?? {
        files: { url: `${upstream.url}/base`, timeout: 2, connect_timeout: 2, max_body: '1MiB', inject: { bearer: 'env:PORT_TEST_UPSTREAM_SECRET' } },
      },
    },
  });
  return {
    ...h,
    upstream,
    async token(init = {}) {
      const job = h.sim.createJob({ pipelineSlug: 'deploy', branch: 'main', ...init });
      const res = await h.exchange(await h.sim.mintToken(job, { audience: h.audience }));
      if (res.status !== 200) throw new Error(`exchange failed: ${JSON.stringify(res.body)}`);
      return res.body.access_token as string;
    },
    relayUrl: (path) => `${h.url}/relay${path}`,
    async close() {
      await h.close();
      await upstream.close();
    },
  };
}
