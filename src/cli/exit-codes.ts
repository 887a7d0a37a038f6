/**
 * `port` exit codes, the same for every command:
 * 0 ok (warnings allowed);
 * 1 the command ran and its check failed or was refused (policy tests, audit verify,
 *   config check problems, a refused exchange), or it failed for a reason outside the
 *   operator's configuration (a network error, a store outage);
 * 2 usage or configuration: a bad flag, an unreadable or invalid config, a secret
 *   reference that doesn't resolve, invalid policies at serve, a missing store, an
 *   address already in use.
 */
export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;
