import { close, fdatasync, open } from 'node:fs';
import { StoreUnavailableError } from '../errors.js';

/**
 * Makes the SQLite write-ahead log durable with an fsync (fdatasync) on libuv's thread pool, so the
 * event loop never waits on the disk.
 *
 * The store runs SQLite with `synchronous=NORMAL` in WAL mode: COMMIT appends the
 * transaction's frames to the `-wal` file without syncing it, and SQLite itself syncs the
 * WAL before every checkpoint copies it into the database, and the database after
 * (https://www.sqlite.org/pragma.html#pragma_synchronous, https://www.sqlite.org/wal.html).
 * What NORMAL gives up — a commit may be lost to a power cut or an OS crash — is given
 * back here: the WriteBatcher acknowledges no write until an fsync of the WAL that started
 * after its COMMIT has returned. One fsync of the file flushes every frame written before
 * it (by any connection or process: the page cache is per file), and recovery keeps a
 * prefix of the log (each frame's checksum chains the ones before it,
 * https://www.sqlite.org/fileformat2.html#walformat), so an acknowledged commit survives
 * with everything committed before it.
 *
 * The difference from `synchronous=FULL` that remains: a commit is visible to readers
 * (here and in other processes on the file) from its COMMIT, up to one sync before it is
 * acknowledged. A reader that refuses on it (single use, revocations) fails closed either
 * way; a writer that follows it is covered, its own sync being later. Only an OS crash or
 * power cut in that window can undo something a reader saw.
 *
 * An fsync error is final for this process: Linux reports a failed writeback once and may
 * drop the pages it could not write, so a later fsync returning success proves nothing
 * about the earlier frames (https://lwn.net/Articles/752063/). Port stops writing until it
 * is restarted and SQLite recovers the file from what is actually on disk.
 */
export class WalSync {
  private fd: number | undefined;
  private failure: string | undefined;

  /** `dbPath` is the database file; its log is `${dbPath}-wal`, which exists while a connection in WAL mode is open. */
  constructor(private readonly dbPath: string) {}

  /** Why this store may no longer write (a failed fsync), or undefined. */
  get failed(): string | undefined {
    return this.failure;
  }

  sync(): Promise<void> {
    if (this.failure !== undefined) return Promise.reject(new StoreUnavailableError(this.failure));
    return new Promise((resolve, reject) => {
      const fail = (err: NodeJS.ErrnoException) => {
        this.failure ??= `the store could not make its commits durable (fsync of its log failed: ${err.code ?? 'unknown error'}); restart Port`;
        reject(new StoreUnavailableError(this.failure, { cause: err }));
      };
      // fdatasync: the log's data and size (all recovery reads), not its timestamps, as
      // SQLite's own sync does where fdatasync exists (https://www.sqlite.org/compile.html#have_fdatasync).
      const syncFd = (fd: number) => fdatasync(fd, (err) => (err ? fail(err) : resolve()));
      if (this.fd !== undefined) return syncFd(this.fd);
      // Opened once and kept: SQLite deletes the log only when the last connection closes,
      // and this process's connection stays open as long as the store does.
      open(`${this.dbPath}-wal`, 'r+', (err, fd) => {
        if (err) return fail(err);
        this.fd = fd;
        syncFd(fd);
      });
    });
  }

  /** Closes the log's descriptor; call after the last sync has settled. */
  close(): void {
    if (this.fd !== undefined) close(this.fd, () => undefined);
    this.fd = undefined;
  }
}
