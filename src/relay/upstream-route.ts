import { Pool } from 'undici';
import type { UpstreamConfig } from '../config/config.js';
import { buildInjector, type Injector } from './credential-injector.js';

/** One `upstreams.<name>` entry, ready to forward to: a keep-alive pool and its injector. */
export class UpstreamRoute {
  readonly name: string;
  readonly host: string;
  /** The upstream URL's path, prefixed to every forwarded path ('' for the root). */
  readonly basePath: string;
  readonly pool: Pool;
  private injector: Injector;

  constructor(readonly config: UpstreamConfig) {
    const url = new URL(config.url);
    this.name = config.name;
    this.host = url.host;
    this.basePath = url.pathname.replace(/\/+$/, '');
    this.pool = new Pool(url.origin, {
      connections: config.connections,
      connectTimeout: config.connectTimeout * 1000,
      headersTimeout: config.timeout * 1000,
      keepAliveTimeout: 4_000,
      pipelining: 1,
    });
    this.injector = buildInjector(config.inject);
  }

  inject(headers: Record<string, string | string[]>): void {
    this.injector(headers);
  }

  /** Re-reads the injected secret (SIGHUP), keeping the old one if it can't be read. */
  reloadSecrets(): void {
    this.injector = buildInjector(this.config.inject);
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}
