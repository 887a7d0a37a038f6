import net from 'node:net';

/**
 * A TCP forwarder a test can take down, to give one client (a database replica) a
 * network outage while others reach the server directly. `cut()` drops every connection
 * through it and holds new ones: accepted, their bytes kept, nothing forwarded, so a
 * client's connect hangs as it does behind a failed network. `restore()` forwards the
 * held connections and every later one.
 */
export interface TcpProxy {
  /** host:port to connect to instead of the target. */
  readonly address: { host: string; port: number };
  /** Connections forwarded now. */
  readonly forwarded: number;
  /** Connections accepted while down, not forwarded yet. */
  readonly held: number;
  cut(): void;
  restore(): void;
  close(): Promise<void>;
}

export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  const forwarded = new Set<net.Socket>();
  const held = new Set<net.Socket>();
  let down = false;

  const forward = (client: net.Socket) => {
    const server = net.connect(target);
    forwarded.add(client);
    const drop = () => {
      forwarded.delete(client);
      client.destroy();
      server.destroy();
    };
    for (const end of [client, server]) {
      end.on('error', drop);
      end.on('close', drop);
    }
    client.pipe(server);
    server.pipe(client);
  };

  const proxy = net.createServer((client) => {
    if (!down) return forward(client);
    // Not read until forwarded: what the client sends waits in the socket.
    held.add(client);
    client.on('error', () => client.destroy());
    client.on('close', () => held.delete(client));
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  const { port } = proxy.address() as net.AddressInfo;

  return {
    address: { host: '127.0.0.1', port },
    get forwarded() {
      return forwarded.size;
    },
    get held() {
      return held.size;
    },
    cut() {
      down = true;
      for (const client of forwarded) client.destroy();
    },
    restore() {
      down = false;
      for (const client of [...held]) {
        held.delete(client);
        client.removeAllListeners('close');
        forward(client);
      }
    },
    async close() {
      for (const client of [...forwarded, ...held]) client.destroy();
      await new Promise<void>((resolve) => proxy.close(() => resolve()));
    },
  };
}
