/**
 * Child of bench/approvals.mjs: the floor under Port's webhook → unblock path. A bare
 * `node:http` server that answers `POST /hook/<job id>` (empty body) with 202 and then, on
 * setImmediate as Port dispatches its handlers, sends the simulator
 * `PUT /v2/organizations/{org}/jobs/{id}/unblock` (`{}`, Bearer token) with undici's
 * `request`, as Port's Buildkite client does. With `?get=<pipeline>/<number>` it first
 * sends `GET …/pipelines/{pipeline}/builds/{number}` and reads the body, the third round
 * trip Port makes. No verification, no parsing, no policy, no store. The parent pins it to
 * the CPU Port runs on.
 *
 * IPC: ← start {simUrl, organization, apiToken} → ready {url}
 *      ← usage                                  → usage {cpuMs, threads}
 *      ← close
 */
import { createServer } from 'node:http';
import { request } from 'undici';
import { childMain, cpuMs, threadCpuMs } from './lib.mjs';

let server;
const ACK = '{"accepted":true}';

childMain({
  async start({ simUrl, organization, apiToken }) {
    const auth = { authorization: `Bearer ${apiToken}` };
    const org = `${simUrl}/v2/organizations/${encodeURIComponent(organization)}`;
    const forward = async (jobId, get) => {
      if (get) {
        const [pipeline, number] = get.split('/');
        const res = await request(`${org}/pipelines/${encodeURIComponent(pipeline)}/builds/${encodeURIComponent(number)}`, { headers: auth });
        await res.body.text();
      }
      const res = await request(`${org}/jobs/${encodeURIComponent(jobId)}/unblock`, {
        method: 'PUT',
        headers: { ...auth, 'content-type': 'application/json' },
        body: '{}',
      });
      await res.body.text();
    };
    server = createServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://x');
      const m = /^\/hook\/([^/]+)$/.exec(url.pathname);
      req.resume();
      req.on('end', () => {
        if (req.method !== 'POST' || !m) {
          res.writeHead(404).end();
          return;
        }
        res.writeHead(202, { 'content-type': 'application/json', 'content-length': String(ACK.length) }).end(ACK);
        const jobId = decodeURIComponent(m[1]);
        const get = url.searchParams.get('get');
        setImmediate(() => forward(jobId, get).catch((err) => console.error(`approvals-baseline: ${err?.message ?? err}`)));
      });
    });
    server.keepAliveTimeout = 5_000;
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
    process.send({ type: 'ready', url: `http://127.0.0.1:${server.address().port}` });
  },
  usage() {
    process.send({ type: 'usage', cpuMs: cpuMs(), threads: threadCpuMs() });
  },
  async close() {
    await new Promise((resolve) => {
      if (!server) return resolve();
      server.close(() => resolve());
      server.closeAllConnections();
    });
    if (process.connected) process.disconnect();
    setTimeout(() => process.exit(), 50).unref();
  },
});
