#!/usr/bin/env node
// The `port` command. It runs the compiled TypeScript in dist/: the published package ships
// it, and in a git checkout `npm ci` builds it (the `prepare` script) or `npm run build` does.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const entry = new URL('../dist/cli/main.js', import.meta.url);

if (!existsSync(entry)) {
  // A source checkout that was never built: say what to run instead of a module-not-found trace.
  const root = fileURLToPath(new URL('..', import.meta.url));
  process.stderr.write(`port: ${fileURLToPath(entry)} is missing: this checkout is not built; run \`npm run build\` in ${root}\n`);
  process.exit(1);
}

const { main } = await import('../dist/cli/main.js');
main(process.argv).catch((err) => {
  process.stderr.write(`port: ${err?.message ?? err}\n`);
  process.exitCode = process.exitCode || 1;
});
