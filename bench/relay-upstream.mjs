/**
 * Child of bench/relay.mjs: the upstream every proxy forwards to. Node's http server,
 * as cheap as it gets: any request gets 200 with a small fixed body, except
 *   GET  /stream/download/<bytes>  → <bytes> bytes of filler, streamed (back-pressure honoured)
 *   PUT|POST /stream/upload…       → the body is counted and dropped; 200 {"bytes": N}
 *
 * IPC: ← start → ready {url};  ← close
 */
import { createServer } from 'node:http';
import { pipeline } from 'node:stream/promises';
import { byteStream, childMain } from './lib.mjs';

export const BODY = Buffer.from('hello from the upstream\n');
const HEAD = ['content-type', 'text/plain', 'content-length', String(BODY.length)];

let server;
childMain({
  async start() {
    server = createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
      const url = req.url;
      if (url.startsWith('/stream/download/')) {
        const bytes = Number(url.slice('/stream/download/'.length));
        res.writeHead(200, ['content-type', 'application/octet-stream', 'content-length', String(bytes)]);
        pipeline(byteStream(bytes), res).catch(() => undefined);
      } else if (url.startsWith('/stream/upload')) {
        let bytes = 0;
        req.on('data', (c) => (bytes += c.length));
        req.on('end', () => {
          const text = JSON.stringify({ bytes });
          res.writeHead(200, ['content-type', 'application/json', 'content-length', String(text.length)]);
          res.end(text);
        });
      } else {
        res.writeHead(200, HEAD);
        res.end(BODY);
      }
    });
    await new Promise((r) => server.listen(0, '127.0.0.1', r));
    process.send({ type: 'ready', url: `http://127.0.0.1:${server.address().port}` });
  },
  async close() {
    server?.closeAllConnections();
    await new Promise((r) => (server ? server.close(r) : r()));
    process.exit(0);
  },
});
