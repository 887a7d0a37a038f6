import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Three files at a time on this 2-core machine (vitest's default is cores - 1 = one at a
    // time): most suites wait on processes, sockets and tokens expiring, not on the CPU.
    maxWorkers: 3,
    minWorkers: 1,
    reporters: ['default', 'json'],
    outputFile: { json: '.vitest-results.json' },
  },
});
