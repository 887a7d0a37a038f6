/**
 * A client for the agent's local Job API (HTTP over the Unix socket in
 * `BUILDKITE_AGENT_JOB_API_SOCKET`, `Authorization: Bearer $BUILDKITE_AGENT_JOB_API_TOKEN`),
 * with the checks and error texts of `buildkite/agent:jobapi/client.go` and
 * `internal/socket/client.go`. Only redactions are needed.
 */
import { stat } from 'node:fs/promises';
import { request } from 'node:http';

/** The Job API client could not be created (missing env, no socket). */
export class JobApiUnavailableError extends Error {}

export class JobApiClient {
  private constructor(
    private readonly socketPath: string,
    private readonly token: string,
  ) {}

  static async fromEnv(env: Readonly<Record<string, string | undefined>>): Promise<JobApiClient> {
    const socketPath = env.BUILDKITE_AGENT_JOB_API_SOCKET ?? '';
    if (socketPath === '') throw new JobApiUnavailableError('BUILDKITE_AGENT_JOB_API_SOCKET empty or undefined');
    const token = env.BUILDKITE_AGENT_JOB_API_TOKEN ?? '';
    if (token === '') throw new JobApiUnavailableError('BUILDKITE_AGENT_JOB_API_TOKEN empty or undefined');
    try {
      const info = await stat(socketPath);
      if (!info.isSocket()) throw new JobApiUnavailableError(`"${socketPath}" is not a socket`);
    } catch (err) {
      if (err instanceof JobApiUnavailableError) throw err;
      throw new JobApiUnavailableError(`stat socket: stat ${socketPath}: no such file or directory`);
    }
    return new JobApiClient(socketPath, token);
  }

  /** Adds a value to the job's log redactor (`POST /api/current-job/v0/redactions`). */
  async createRedaction(text: string): Promise<void> {
    const { status, body } = await this.call('POST', '/api/current-job/v0/redactions', { redact: text });
    if (status >= 400) {
      let msg = body;
      try {
        const parsed = JSON.parse(body) as { error?: unknown };
        if (typeof parsed.error === 'string') msg = parsed.error;
      } catch {
        // keep the raw body
      }
      throw new Error(`API status ${status}: ${msg}`);
    }
  }

  private call(method: string, path: string, payload: unknown): Promise<{ status: number; body: string }> {
    const data = JSON.stringify(payload);
    return new Promise((resolve, reject) => {
      const req = request(
        {
          socketPath: this.socketPath,
          method,
          path,
          headers: {
            host: 'job',
            authorization: `Bearer ${this.token}`,
            'content-type': 'application/json',
            'content-length': Buffer.byteLength(data),
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end(data);
    });
  }
}
