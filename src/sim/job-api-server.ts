/**
 * A stand-in for the agent's local Job API: HTTP over a Unix socket named by
 * `BUILDKITE_AGENT_JOB_API_SOCKET`, authenticated with `Authorization: Bearer
 * $BUILDKITE_AGENT_JOB_API_TOKEN` (https://buildkite.com/docs/apis/agent-api/internal-job; `buildkite/agent:jobapi/`).
 * Only the redaction routes are served — `POST|GET /api/current-job/v0/redactions`
 * — because `oidc request-token` needs them (redaction is on by default since
 * v3.104.0, https://buildkite.com/docs/agent/v3/cli-oidc) and `redactor add` uses them. The real agent runs one
 * socket per job; one socket with per-job tokens looks the same to a client.
 * Errors answer `{"error": …}` like the agent's `internal/socket` server.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BodyError, isRecord, readJson, sendJson } from './http.js';
import type { SimJob } from './types.js';

const REDACTIONS_PATH = '/api/current-job/v0/redactions';

export class JobApiServer {
  private readonly redactionsByJob = new Map<string, string[]>();

  private constructor(
    private readonly server: Server,
    private readonly dir: string,
    readonly socketPath: string,
  ) {}

  /** Listens on a fresh socket in a private temp dir; `lookup` maps a bearer token to its running job. */
  static async start(lookup: (token: string) => SimJob | undefined): Promise<JobApiServer> {
    // Keep the path short: Unix socket paths are limited to ~104–108 bytes.
    const dir = await mkdtemp(join(tmpdir(), 'bksim-'));
    const socketPath = join(dir, 'job-api.sock');
    let self: JobApiServer | undefined;
    const server = createServer((req, res) => {
      if (self === undefined) return sendJson(res, 503, { error: 'starting' });
      self.handle(req, res, lookup).catch(() => sendJson(res, 500, { error: 'internal error' }));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(socketPath, () => resolve());
    });
    self = new JobApiServer(server, dir, socketPath);
    return self;
  }

  /** Values redacted for a job, in the order they were added. */
  redactions(jobId: string): string[] {
    return [...(this.redactionsByJob.get(jobId) ?? [])];
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
    await rm(this.dir, { recursive: true, force: true });
  }

  private async handle(
    req: IncomingMessage,
    res: ServerResponse,
    lookup: (token: string) => SimJob | undefined,
  ): Promise<void> {
    const auth = req.headers.authorization ?? '';
    const job = auth.startsWith('Bearer ') ? lookup(auth.slice('Bearer '.length)) : undefined;
    if (job === undefined) return sendJson(res, 401, { error: 'invalid Authorization header' });
    const path = new URL(req.url ?? '/', 'http://job').pathname;
    if (path !== REDACTIONS_PATH) return sendJson(res, 404, { error: 'not found' });
    if (req.method === 'GET') return sendJson(res, 200, { redactions: this.redactions(job.jobId) });
    if (req.method !== 'POST') return sendJson(res, 405, { error: 'method not allowed' });
    let body: unknown;
    try {
      body = await readJson(req);
    } catch (err) {
      const msg = err instanceof BodyError ? err.message : 'bad request';
      return sendJson(res, 400, { error: `failed to decode request body: ${msg}` });
    }
    if (!isRecord(body) || typeof body.redact !== 'string') {
      return sendJson(res, 400, { error: 'failed to decode request body: "redact" must be a string' });
    }
    const list = this.redactionsByJob.get(job.jobId) ?? [];
    list.push(body.redact);
    this.redactionsByJob.set(job.jobId, list);
    sendJson(res, 201, { redacted: body.redact });
  }
}
