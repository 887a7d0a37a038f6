import type { PortConfig } from '../config/config.js';
import { resolveSecretRef } from '../config/secret-ref.js';
import { UsageError } from './usage-error.js';

/**
 * The Port an admin command talks to: `--url`, else `$PORT_URL`, else the config's own
 * listen address (a wildcard or ephemeral one says nothing, so then its public URL).
 */
export function portUrl(url: string | undefined, config: PortConfig | undefined): string {
  let found = url ?? process.env.PORT_URL;
  if (found === undefined && config) {
    const { host, port } = config.server.listen;
    found = port === 0 ? config.server.publicUrl : `http://${host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host}:${port}`;
  }
  if (!found) throw new UsageError("give Port's URL with --url, $PORT_URL or -c port.yaml");
  return found.replace(/\/+$/, '');
}

/** The admin token from the config's `server.admin_token`, else `$PORT_ADMIN_TOKEN`; undefined when neither is set. */
export function configuredAdminToken(config: PortConfig | undefined): string | undefined {
  const source = config?.server.adminToken;
  return source ? resolveSecretRef(source.ref, source.key, source.baseDir) : process.env.PORT_ADMIN_TOKEN || undefined;
}
