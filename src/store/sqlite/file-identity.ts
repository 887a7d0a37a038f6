import { statSync } from 'node:fs';

/**
 * The identity (device and inode) of the SQLite file Port opened. SQLite keeps writing
 * to an open file descriptor after its path is deleted, renamed or replaced — commits
 * "succeed" into an unlinked inode and are gone at the next start — so Port compares
 * the path's identity with the one it opened before and after every commit (the check
 * SQLite itself makes for SQLITE_FCNTL_HAS_MOVED, https://www.sqlite.org/c3ref/c_fcntl_begin_atomic_write.html).
 */
export class FileIdentity {
  /** The device and inode of the file as opened. */
  readonly dev: number;
  readonly ino: number;

  constructor(readonly path: string) {
    const st = statSync(path);
    this.dev = st.dev;
    this.ino = st.ino;
  }

  /** Undefined while the path still names the file Port opened; otherwise what happened to it. */
  problem(): FileProblem | undefined {
    let st;
    try {
      st = statSync(this.path);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      return code === 'ENOENT' || code === 'ENOTDIR'
        ? { reason: 'the SQLite file was deleted or moved while Port was running', moved: true }
        : { reason: `the SQLite file can no longer be checked (${code ?? 'unknown error'})`, moved: false };
    }
    return st.dev === this.dev && st.ino === this.ino ? undefined : { reason: 'the SQLite file was replaced by another file while Port was running', moved: true };
  }
}

export interface FileProblem {
  reason: string;
  /**
   * True when the path no longer names the file (deleted, moved, replaced): what was
   * committed may be gone. False when it only can't be checked (EACCES, EMFILE): the
   * file is likely where it was, but Port can't confirm it, so it stops writing.
   */
  moved: boolean;
}
