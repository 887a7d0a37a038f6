import { randomUUID } from 'node:crypto';
import { linkSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
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
 * never exists empty). A lock whose process is gone (a crash, kill -9) is taken over by
 * renaming it aside first and checking that what was moved is the stale lock, so two
 * demos taking over one stale lock at once can't remove each other's fresh lock.
 */
export function lockDemoDir(dir: string): { release(): void } {
  const file = join(dir, 'demo.pid');
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      // Written under a private name, then linked into place: the lock never exists empty.
      const mine = `${file}.${process.pid}.${randomUUID()}`;
      writeFileSync(mine, `${process.pid}\n`, { mode: 0o600 });
      try {
        linkSync(mine, file);
      } finally {
        rmSync(mine, { force: true });
      }
      // Released only while it is still ours (never another demo's lock).
      return { release: () => void (readPid(file) === process.pid && rmSync(file, { force: true })) };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const pid = readPid(file);
      if (pid !== undefined && alive(pid)) throw new DemoBusyError(dir, pid);
      const aside = `${file}.${randomUUID()}`;
      try {
        renameSync(file, aside);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue; // another demo moved it first
        throw e;
      }
      const moved = readPid(aside);
      if (moved !== pid && moved !== undefined && alive(moved)) {
        // A fresh lock, made since we read the stale one: put it back (unless yet another appeared) and yield.
        try {
          linkSync(aside, file);
        } catch {
          // Someone else holds the name now; their lock stands.
        }
        rmSync(aside, { force: true });
        throw new DemoBusyError(dir, moved);
      }
      rmSync(aside, { force: true });
    }
  }
  throw new Error(`cannot lock ${dir} for port demo`);
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
