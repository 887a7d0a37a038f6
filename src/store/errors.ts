import { PortError } from '../errors.js';

/**
 * The store was written by a newer Port (its schema is at a version this Port doesn't know).
 * Port refuses to start on it rather than run old code against a newer schema; the fix is
 * the operator's (run the newer Port, or restore the store this one was made for), so a
 * supervisor must not retry it.
 */
export class StoreTooNewError extends PortError {
  constructor(message: string) {
    super('store_too_new', message, 500);
  }
}

/**
 * The store cannot durably write right now (its file was deleted or replaced, the disk
 * is full, an I/O error). Port fails closed: whatever needed the write is refused with
 * 503 and nothing was changed; the message says why without naming paths.
 */
export class StoreUnavailableError extends PortError {
  constructor(
    /** What is wrong with the store, e.g. "the disk is full". */
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super('store_unavailable', `Port cannot record this request in its store right now (${reason}), so it changed nothing; retry shortly.`, 503, options);
  }
}

/**
 * The database went away while committing a write: Port sent the COMMIT and never heard
 * back, so the write may or may not have been recorded, and Port can't tell until the
 * database is back. Still 503 `store_unavailable`, but it doesn't claim nothing changed:
 * a single-use token may already count as used, so the caller retries with a fresh one.
 */
export class StoreCommitUnknownError extends StoreUnavailableError {
  constructor(reason: string, options?: { cause?: unknown }) {
    super(reason, options);
    this.message = `Port lost its database (${reason}) while recording this request, so it may or may not have been recorded; retry shortly, with a fresh token if this one is refused as already used.`;
  }
}

/**
 * `port serve` found no store where the config says one is, and was not asked to
 * create one: starting on an empty store would forget revocations and accept Buildkite
 * tokens that were already exchanged.
 */
export class StoreMissingError extends PortError {
  constructor(path: string) {
    super(
      'store_missing',
      `the store ${path} does not exist (or is empty); if this is Port's first start, start it once with \`port serve --create-store\`, ` +
        'otherwise restore the file from a backup — an empty store would forget revocations and accept tokens already exchanged',
      500,
    );
  }
}

/** SQLite result codes that mean the file can't take writes (https://www.sqlite.org/rescode.html). */
const STORAGE_CODES = /^SQLITE_(FULL|IOERR|READONLY|CANTOPEN|CORRUPT|NOTADB|BUSY|LOCKED)/;

/** A short, path-free description of a storage failure, or undefined for an ordinary error (a constraint, a bug). */
export function storageFailure(err: unknown): string | undefined {
  if (err instanceof StoreUnavailableError) return err.reason;
  const code = (err as { code?: unknown })?.code;
  if (typeof code !== 'string' || !STORAGE_CODES.test(code)) return undefined;
  if (code === 'SQLITE_FULL') return 'the disk is full';
  if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')) return 'the store is locked by another process';
  if (code.startsWith('SQLITE_READONLY')) return 'the store is read-only';
  if (code.startsWith('SQLITE_CORRUPT') || code === 'SQLITE_NOTADB') return 'the store file is corrupt';
  return 'the store reported an I/O error';
}
