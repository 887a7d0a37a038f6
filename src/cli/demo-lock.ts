import { randomUUID } from 'node:crypto';
import { linkSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Another `port demo` already runs in the folder. */
export class DemoBusyError extends Error {
  readonly code = 'demo_busy';
  constructor(dir: string, pid: number) {
    super(`another port demo (pid ${pid}) is already running in ${dir}; stop it first, or give this one its own folder with --dir`);
  }
}

/**
 * One `port demo` per folder: a lock file holding the owner's pid, created exclusively
 * (written aside, then link(2)ed into place, which fails if the name exists, so the lock
 * never exists empty). A lock whose process is gone (a crash, kill -9) is removed only by
 * the holder of a second exclusive file, `demo.pid.takeover`, after it has read the lock
 * again and found it still stale: only one process at a time may remove a lock, and only a
 * dead owner's, so a fresh lock is never removed (renaming a lock aside to inspect it left
 * a moment with no lock, in which a third demo could take it while the first still held it).
 */
export function lockDemoDir(dir: string): { release(): void } {
  const file = join(dir, 'demo.pid');
  const takeover = `${file}.takeover`;
  for (let attempt = 0; attempt < 200; attempt++) {
    if (linkExclusive(file)) {
      // Released only while it is still ours (never another demo's lock).
      return { release: () => void (readPid(file) === process.pid && rmSync(file, { force: true })) };
    }
    const pid = readPid(file);
    if (pid !== undefined && alive(pid)) throw new DemoBusyError(dir, pid);
    if (linkExclusive(takeover)) {
      try {
        const now = readPid(file);
        if (now === undefined || !alive(now)) rmSync(file, { force: true });
      } finally {
        rmSync(takeover, { force: true });
      }
    } else if (takeoverAbandoned(takeover)) {
      rmSync(takeover, { force: true });
    } else {
      sleep(10); // another demo is removing the stale lock; look again
    }
  }
  throw new Error(`cannot lock ${dir} for port demo`);
}

/** Creates `name` holding this pid, atomically and only if it doesn't exist: false if it does. */
function linkExclusive(name: string): boolean {
  const mine = `${name}.${process.pid}.${randomUUID()}`;
  writeFileSync(mine, `${process.pid}\n`, { mode: 0o600 });
  try {
    linkSync(mine, name);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    return false;
  } finally {
    rmSync(mine, { force: true });
  }
}

/** A takeover file whose process died holding it (removing a lock takes microseconds). */
function takeoverAbandoned(name: string): boolean {
  const pid = readPid(name);
  return pid !== undefined && !alive(pid);
}

function sleep(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function readPid(file: string): number | undefined {
  let text;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  const pid = Number(text.trim());
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
