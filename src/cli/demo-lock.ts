import { closeSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
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
 * (O_EXCL). A lock whose process is gone (a crash, kill -9) is taken over.
 */
export function lockDemoDir(dir: string): { release(): void } {
  const file = join(dir, 'demo.pid');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(file, 'wx', 0o600);
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      return { release: () => rmSync(file, { force: true }) };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const pid = Number(readFileSync(file, 'utf8').trim());
      if (Number.isInteger(pid) && pid > 0 && alive(pid)) throw new DemoBusyError(dir, pid);
      rmSync(file, { force: true });
    }
  }
  throw new Error(`cannot lock ${dir} for port demo`);
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
