#!/usr/bin/env node
// The `port` command. The TypeScript sources are compiled to dist/ by `npm ci` (prepare).
import { main } from '../dist/cli/main.js';

main(process.argv).catch((err) => {
  process.stderr.write(`port: ${err?.message ?? err}\n`);
  process.exitCode = process.exitCode || 1;
});
