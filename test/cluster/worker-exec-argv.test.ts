import { describe, expect, it } from 'vitest';
import { WORKER_V8_FLAGS, workerExecArgv } from '../../src/cluster/workers.js';

describe('workerExecArgv: the flags a server.workers worker starts with', () => {
  it("adds V8's single-threaded collector to the primary's own flags, which keep their order", () => {
    expect(WORKER_V8_FLAGS).toContain('--single-threaded-gc');
    expect(workerExecArgv(['--max-old-space-size=512', '--enable-source-maps'])).toEqual(['--max-old-space-size=512', '--enable-source-maps', '--single-threaded-gc']);
    expect(workerExecArgv([])).toEqual(['--single-threaded-gc']);
  });

  it('leaves a flag the operator gave the primary as given, in either form', () => {
    expect(workerExecArgv(['--single-threaded-gc'])).toEqual(['--single-threaded-gc']);
    // An operator who wants V8's helper threads back (say, workers: 2 on a machine with cores to spare) says so.
    expect(workerExecArgv(['--no-single-threaded-gc'])).toEqual(['--no-single-threaded-gc']);
  });
});
