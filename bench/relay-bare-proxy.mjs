/**
 * The floor any Node relay pays: a bare reverse proxy on undici — no auth, no policy, no
 * header hygiene beyond what HTTP/1.1 and undici require — that only pipes requests
 * through a keep-alive Pool (64 connections, as Port's default) and answers back.
 *
 *   node bench/relay-bare-proxy.mjs UPSTREAM_URL [PORT]    (bench/relay.mjs runs it over IPC)
 */
import { createServer } from 'node:http';
import { pipeline } from 'node:stream/promises';
import { Pool } from 'undici';

const upstream = process.argv[2] ?? process.env.BARE_PROXY_UPSTREAM;
if (!upstream) throw new Error('usage: node bench/relay-bare-proxy.mjs UPSTREAM_URL [PORT]');
const pool = new Pool(upstream, { connections: 64, pipelining: 1, keepAliveTimeout: 4_000 });
// Hop-by-hop headers, and those undici sets itself (it refuses some of them).
const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'host', 'expect']);
const strip = (headers) => {
  const out = {};
  for (const k in headers) if (!HOP.has(k)) out[k] = headers[k];
  return out;
};

const server = createServer(async (req, res) => {
  try {
    const hasBody = req.headers['transfer-encoding'] !== undefined || (req.headers['content-length'] ?? '0') !== '0';
    const up = await pool.request({ path: req.url, method: req.method, headers: strip(req.headers), body: hasBody ? req : null });
    res.writeHead(up.statusCode, strip(up.headers));
    await pipeline(up.body, res);
  } catch {
    if (res.headersSent) return void res.destroy();
    res.writeHead(502, { 'content-type': 'text/plain' }).end('bad gateway\n');
  }
});

server.listen(Number(process.argv[3] ?? 0), '127.0.0.1', () => {
  const url = `http://127.0.0.1:${server.address().port}`;
  if (process.send) process.send({ type: 'ready', url, pid: process.pid });
  else console.log(`bare proxy at ${url} → ${upstream}`);
});
process.on('message', (m) => m?.type === 'close' && server.close(() => pool.close().then(() => process.exit(0))) && server.closeAllConnections());
process.on('disconnect', () => process.exit(0));
