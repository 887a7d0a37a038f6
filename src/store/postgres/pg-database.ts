import type { Pool, PoolClient, QueryResultRow } from 'pg';
import { StoreCommitUnknownError, StoreUnavailableError } from '../errors.js';
import type { StoreHealth } from '../store.js';

/** Something that runs a query: the pool (autocommit) or a client inside a transaction. */
export interface Queryable {
  query<R extends QueryResultRow = QueryResultRow>(text: string, values?: unknown[]): Promise<{ rows: R[]; rowCount: number | null }>;
}

/**
 * SQLSTATE classes and codes that mean the database can't take writes now, rather than
 * a bug or a constraint (https://www.postgresql.org/docs/current/errcodes-appendix.html):
 * 08 connection exceptions, 53 insufficient resources (53100 disk full), 57P0x the server
 * shutting down or restarting, 25006 a read-only transaction (a standby after failover).
 */
function unavailableReason(err: unknown): string | undefined {
  if (err instanceof StoreUnavailableError) return err.reason;
  if (isUnreachable(err)) return 'the database is unreachable';
  const code = (err as { code?: unknown })?.code;
  if (typeof code !== 'string') return undefined;
  if (code === '53100') return 'the database disk is full';
  if (code.startsWith('53')) return 'the database is out of resources';
  if (code.startsWith('08') || /^E(CONNREFUSED|CONNRESET|PIPE|TIMEDOUT|HOSTUNREACH|NOTFOUND|AI_AGAIN)$/.test(code)) return 'the database is unreachable';
  if (code.startsWith('57P')) return 'the database is shutting down or restarting';
  if (code === '25006') return 'the database is read-only';
  return undefined;
}

function isUnreachable(err: unknown): boolean {
  // node-postgres: "Connection terminated unexpectedly", "timeout exceeded when trying to connect".
  return err instanceof Error && /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|Query read timeout/i.test(err.message);
}

/** Serialization failure and deadlock: the transaction may simply be run again. */
const RETRYABLE = new Set(['40001', '40P01']);

/**
 * The PostgreSQL store's access to its pool: every query and transaction goes through
 * here, so a database that can't take writes becomes StoreUnavailableError (503, Port
 * fails closed and changes nothing) and `health()` says so until a write succeeds again.
 */
export class PgDatabase {
  private failure: string | undefined;
  private lastCommitAt = 0;

  constructor(readonly pool: Pool) {}

  health(): StoreHealth {
    return this.failure === undefined ? { writable: true } : { writable: false, reason: this.failure };
  }

  get lastCommit(): number {
    return this.lastCommitAt;
  }

  /** One statement that only reads (a failure changes nothing). */
  async query<R extends QueryResultRow = QueryResultRow>(text: string, values?: unknown[]): Promise<{ rows: R[]; rowCount: number | null }> {
    try {
      const r = await this.pool.query<R>(text, values);
      return r;
    } catch (err) {
      throw this.translate(err);
    }
  }

  /**
   * One autocommitted write: also proves (or disproves) the database takes writes. Its
   * connection failing once it was connected leaves the write in doubt (it commits on
   * its own when it reaches the server): StoreCommitUnknownError says so.
   */
  async write<R extends QueryResultRow = QueryResultRow>(text: string, values?: unknown[]): Promise<{ rows: R[]; rowCount: number | null }> {
    return this.withClient(async (client, drop) => {
      try {
        const r = await client.query<R>(text, values);
        this.committed();
        return r;
      } catch (err) {
        const unavailable = unavailableReason(err);
        if (unavailable === undefined) throw err;
        drop();
        this.failure = unavailable;
        throw new StoreCommitUnknownError(unavailable, { cause: err });
      }
    });
  }

  /**
   * Runs `work` in one transaction (READ COMMITTED unless `isolation` says otherwise),
   * retrying a serialization failure or deadlock a few times; resolves once committed.
   */
  async transaction<T>(work: (client: Queryable) => Promise<T>, isolation: 'READ COMMITTED' | 'SERIALIZABLE' = 'READ COMMITTED'): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const outcome = await this.withClient(async (client, drop): Promise<{ result: T } | 'retry'> => {
        let committing = false;
        try {
          await client.query(`BEGIN ISOLATION LEVEL ${isolation}`);
          const result = await work(client);
          committing = true;
          await client.query('COMMIT');
          this.committed();
          return { result };
        } catch (err) {
          const unavailable = unavailableReason(err);
          // A connection that failed or timed out can't roll back: it is dropped, which
          // aborts the transaction on the server (and doesn't queue behind a stuck query).
          if (unavailable !== undefined) drop();
          else await client.query('ROLLBACK').catch(drop);
          if (committing && unavailable !== undefined) {
            // The COMMIT was sent and its answer lost: the server may have committed it.
            this.failure = unavailable;
            throw new StoreCommitUnknownError(unavailable, { cause: err });
          }
          const code = (err as { code?: unknown })?.code;
          if (typeof code === 'string' && RETRYABLE.has(code) && attempt < 5) return 'retry';
          throw this.translate(err);
        }
      });
      if (outcome !== 'retry') return outcome.result;
    }
  }

  /**
   * Checks a client out for `run` and back in. A checked-out client whose connection dies
   * emits 'error'; unheard, that would be an uncaught exception
   * (https://node-postgres.com/apis/pool#releasing-clients) — the query in flight fails as
   * well, which is where `run` handles it. A client whose connection failed (or that `run`
   * drops) is destroyed rather than returned to the pool.
   */
  private async withClient<T>(run: (client: PoolClient, drop: () => void) => Promise<T>): Promise<T> {
    let client: PoolClient;
    try {
      client = await this.pool.connect();
    } catch (err) {
      throw this.translate(err);
    }
    let broken = false;
    const drop = (): void => {
      broken = true;
    };
    client.on('error', drop);
    try {
      return await run(client, drop);
    } finally {
      client.off('error', drop);
      client.release(broken ? true : undefined);
    }
  }

  private committed(): void {
    this.failure = undefined;
    this.lastCommitAt = Date.now();
  }

  /** StoreUnavailableError for a database that can't take writes (remembered for health()); the error itself otherwise. */
  translate(err: unknown): unknown {
    const reason = unavailableReason(err);
    if (reason === undefined) return err;
    this.failure = reason;
    return err instanceof StoreUnavailableError ? err : new StoreUnavailableError(reason, { cause: err });
  }
}

/** bigint columns arrive as strings (node-postgres keeps 64-bit integers exact); ms times fit a double. */
export function num(value: string | number): number;
export function num(value: string | number | null | undefined): number | undefined;
export function num(value: string | number | null | undefined): number | undefined {
  return value === null || value === undefined ? undefined : Number(value);
}
