#!/usr/bin/env node
// Writes docs/reference/configuration.md and docs/reference/port.schema.json from the
// config schema (src/config/schema.ts, built into dist/ by `npm run build`).
// `--check`: write nothing; exit 1 if either file is not what the schema generates.
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'dist', 'config');
if (!existsSync(join(dist, 'reference.js'))) {
  console.error('dist/config/reference.js is missing; run npm run build first.');
  process.exit(2);
}
const { renderConfigReference } = await import(pathToFileURL(join(dist, 'reference.js')).href);
const { configJsonSchema } = await import(pathToFileURL(join(dist, 'json-schema.js')).href);

const outputs = [
  ['docs/reference/configuration.md', renderConfigReference()],
  ['docs/reference/port.schema.json', `${JSON.stringify(configJsonSchema(), null, 2)}\n`],
];
const check = process.argv.includes('--check');
let stale = 0;
for (const [file, text] of outputs) {
  const path = join(root, file);
  const current = existsSync(path) ? readFileSync(path, 'utf8') : undefined;
  if (current === text) continue;
  if (check) {
    console.error(`${file} is out of date with src/config/schema.ts; run npm run docs:config and commit the result.`);
    stale++;
  } else {
    writeFileSync(path, text);
    console.log(`wrote ${file}`);
  }
}
process.exit(stale > 0 ? 1 : 0);
