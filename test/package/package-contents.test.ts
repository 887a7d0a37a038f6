/**
 * What `npm pack` would publish, checked without installing it (seconds; the install itself
 * is install.e2e.test.ts):
 * - the file list: the compiled code, the bin, the examples, the systemd unit (deploy/),
 *   README and LICENSE; nothing dev-only (tests, TypeScript sources, benchmarks, CI
 *   scripts, source maps);
 * - no stale build output: every dist/**.js has its src/**.ts;
 * - nothing on the runtime path imports a devDependency: every bare specifier that a
 *   packed .js file imports (static import/export, `import()`, `require()`) is a Node.js
 *   builtin or one of package.json's `dependencies` (an installed package has only those);
 * - package.json is publishable under the name Port owns, and LICENSE matches `license`.
 *
 * It lists the files with `npm pack --dry-run --ignore-scripts` (dist/ is built by the npm
 * `test` script first; the build is not rerun here so no other test's process ever reads a
 * half-written dist file) and reads them from this working tree.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, posix, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));

interface PackageJson {
  name: string;
  version: string;
  license: string;
  private?: boolean;
  bin: Record<string, string>;
  files: string[];
  engines: Record<string, string>;
  scripts: Record<string, string>;
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
}

const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as PackageJson;

/** The paths `npm pack` would put in the tarball, relative to the package root. */
function packedFiles(): string[] {
  if (!existsSync(join(ROOT, 'dist', 'cli', 'main.js'))) {
    throw new Error('dist/ is not built; run `npm run build` first (the npm test script does).');
  }
  const out = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {
    cwd: ROOT,
    encoding: 'utf8',
    maxBuffer: 32 * 1024 * 1024,
    env: { ...process.env, npm_config_loglevel: 'error' },
  });
  const [report] = JSON.parse(out) as { files: { path: string }[] }[];
  return report!.files.map((f) => f.path).sort();
}

/** Every module specifier in a JavaScript file, with the line it's on. */
function moduleSpecifiers(file: string, text: string): { specifier: string; line: number }[] {
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.JS);
  const found: { specifier: string; line: number }[] = [];
  // String constants of the file, so `const specifier = 'x'; await import(specifier)` (the
  // form the code uses to load optional modules lazily) is seen as importing 'x'.
  const constants = new Map<string, string>();
  const lineOf = (node: ts.Node) => source.getLineAndCharacterOfPosition(node.getStart(source)).line + 1;
  const add = (arg: ts.Expression | undefined, node: ts.Node, how: string) => {
    if (arg && ts.isStringLiteralLike(arg)) return found.push({ specifier: arg.text, line: lineOf(node) });
    if (arg && ts.isIdentifier(arg) && constants.has(arg.text)) return found.push({ specifier: constants.get(arg.text)!, line: lineOf(node) });
    // A specifier this check can't see could name anything: fail closed.
    throw new Error(`${file}:${lineOf(node)}: ${how} of a computed specifier (${arg?.getText(source) ?? 'nothing'}); use a string literal or a const string so the runtime-imports check can follow it`);
  };
  const collectConstants = (node: ts.Node): void => {
    if (ts.isVariableDeclaration(node) && ts.isIdentifier(node.name) && node.initializer && ts.isStringLiteralLike(node.initializer)) {
      constants.set(node.name.text, node.initializer.text);
    }
    ts.forEachChild(node, collectConstants);
  };
  const visit = (node: ts.Node): void => {
    if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier) {
      add(node.moduleSpecifier, node, 'import');
    } else if (ts.isCallExpression(node)) {
      if (node.expression.kind === ts.SyntaxKind.ImportKeyword) add(node.arguments[0], node, 'import()');
      else if (ts.isIdentifier(node.expression) && node.expression.text === 'require') add(node.arguments[0], node, 'require()');
    }
    ts.forEachChild(node, visit);
  };
  collectConstants(source);
  visit(source);
  return found;
}

/** The package a bare specifier names: `@scope/name/sub` → `@scope/name`, `name/sub` → `name`. */
function packageOf(specifier: string): string {
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]!;
}

const BUILTINS = new Set(builtinModules);
const isBuiltin = (s: string) => s.startsWith('node:') || BUILTINS.has(s) || BUILTINS.has(s.split('/')[0]!);

let files: string[] = [];
beforeAll(() => {
  files = packedFiles();
});

describe('the packed file list', () => {
  it('has the compiled CLI, the bin, the examples, the systemd unit, the docs, README, LICENSE and package.json', () => {
    for (const f of ['package.json', 'README.md', 'LICENSE', 'bin/port.js', 'dist/cli/main.js', 'dist/server/port-server.js', 'examples/policies/exchange.cedar', 'examples/exchange-minimal/port.yaml', 'deploy/systemd/port.service', 'deploy/systemd/port.sysusers.conf', 'docs/getting-started.md', 'docs/reference/configuration.md']) {
      expect(files, `${f} is not in the package`).toContain(f);
    }
    expect(Object.values(pkg.bin)).toEqual(['bin/port.js']);
  });

  it('has nothing dev-only: no tests, TypeScript sources, benchmarks, CI, plugin tree, source maps or dependencies', () => {
    const devOnly = files.filter(
      (f) =>
        /^(test|src|bench|\.ci|plugin|scripts|node_modules|coverage|\.port-demo)\//.test(f) ||
        (f.endsWith('.ts') && !f.endsWith('.d.ts')) ||
        f.endsWith('.map') ||
        /(^|\/)(vitest\.config|tsconfig[^/]*\.json$|\.vitest-results\.json$|BENCHMARKS\.md$)/.test(f) ||
        /\.(db|db-wal|db-shm|tgz)$/.test(f),
    );
    expect(devOnly).toEqual([]);
  });

  it('ships no stale build output: every dist/**.js has its src/**.ts', () => {
    const stale = files
      .filter((f) => f.startsWith('dist/') && f.endsWith('.js'))
      .filter((f) => !existsSync(join(ROOT, 'src', f.slice('dist/'.length).replace(/\.js$/, '.ts'))));
    // In a working tree where a source file was renamed or removed: rm -rf dist && npm run build.
    expect(stale, 'compiled files without a source (rebuild dist/ from scratch)').toEqual([]);
  });
});

describe('the runtime imports', () => {
  it('every bare import of the packed code is a Node.js builtin or a dependency; every relative one is packed', () => {
    const problems: string[] = [];
    const packed = new Set(files);
    const seen = new Set<string>();
    for (const f of files.filter((p) => /\.(m?js|cjs)$/.test(p))) {
      for (const { specifier, line } of moduleSpecifiers(f, readFileSync(join(ROOT, f), 'utf8'))) {
        if (specifier.startsWith('.')) {
          const target = posix.normalize(posix.join(posix.dirname(f), specifier));
          if (!packed.has(target) && target !== 'package.json') problems.push(`${f}:${line}: imports ${specifier}, which is not in the package`);
          continue;
        }
        if (isBuiltin(specifier)) continue;
        const name = packageOf(specifier);
        seen.add(name);
        if (pkg.dependencies[name]) continue;
        problems.push(
          pkg.devDependencies[name]
            ? `${f}:${line}: imports ${specifier}, a devDependency: an installed Port doesn't have it (move it to dependencies, or keep it out of src/)`
            : `${f}:${line}: imports ${specifier}, which package.json doesn't list as a dependency`,
        );
      }
    }
    expect(problems).toEqual([]);
    // The check saw the code's real imports (the lazily loaded demo identity provider included).
    for (const name of ['fastify', 'better-sqlite3', 'commander', 'oidc-provider']) expect(seen).toContain(name);
  });

  it('follows import() of a const specifier and refuses one it cannot see', () => {
    expect(moduleSpecifiers('a.js', "const specifier = 'oidc-provider';\nawait import(specifier);").map((s) => s.specifier)).toEqual(['oidc-provider']);
    expect(moduleSpecifiers('a.js', "export { x } from './x.js';\nrequire('node:fs');").map((s) => s.specifier)).toEqual(['./x.js', 'node:fs']);
    expect(() => moduleSpecifiers('a.js', 'await import(process.env.X);')).toThrow(/a\.js:1: import\(\) of a computed specifier \(process\.env\.X\)/);
  });
});

describe('package.json', () => {
  it('is publishable as buildkite-port with the bin `port` and no self-link', () => {
    expect(pkg.name).toBe('buildkite-port');
    expect(pkg.private).toBeUndefined();
    expect(pkg.bin).toEqual({ port: 'bin/port.js' });
    expect(pkg.engines.node).toMatch(/^>=\s*20\./);
    const local = Object.entries({ ...pkg.dependencies, ...pkg.devDependencies }).filter(([, v]) => /^(file|link|workspace):/.test(v));
    expect(local, 'dependencies on local paths (a published package cannot resolve them)').toEqual([]);
  });

  it('builds dist/ whenever it is packed or installed from git (`prepare` runs for both)', () => {
    // npm runs `prepare` on `npm pack`/`npm publish` and on a git checkout's `npm install`/`npm ci`
    // (https://docs.npmjs.com/cli/v11/using-npm/scripts#life-cycle-operation-order).
    expect(pkg.scripts.prepare).toMatch(/^(npm run build|tsc -p tsconfig\.json)$/);
    expect(pkg.scripts.build).toMatch(/^tsc -p tsconfig\.json/);
  });

  it('LICENSE is the Apache License 2.0 that `license` names', () => {
    expect(pkg.license).toBe('Apache-2.0');
    const text = readFileSync(join(ROOT, 'LICENSE'), 'utf8');
    expect(text).toMatch(/^\s*Apache License\s+Version 2\.0, January 2004/);
    expect(text).toContain('END OF TERMS AND CONDITIONS');
  });
});

describe('`npm exec port` inside this repository', () => {
  it("runs this checkout's bin, never the registry's unrelated `port` package", () => {
    // npm exec first looks for a bin of that name in the project's own package.json and runs
    // it from a link to the project (libnpmexec); only without one would it fetch `port` from
    // the registry. --no (never install) and --offline make any registry lookup fail loudly.
    // The link is made in npm's npx cache: a cache of the test's own keeps the user's ~/.npm
    // untouched and no other npm's lock in the way, and --ignore-scripts stops the link's
    // `prepare` from rebuilding dist/ (13 s, under the feet of every other test running it).
    const cache = mkdtempSync(join(tmpdir(), 'port-npm-cache-'));
    try {
      const out = execFileSync(
        'npm',
        ['exec', '--no', '--offline', '--ignore-scripts', '--cache', cache, 'port', '--', '--version'],
        {
          cwd: join(ROOT, 'src'),
          encoding: 'utf8',
          env: Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k))),
        },
      );
      expect(out.trim()).toBe(pkg.version);
    } finally {
      rmSync(cache, { recursive: true, force: true });
    }
  });
});

describe('bin/port.js in a checkout that was never built', () => {
  const dir = mkdtempSync(join(tmpdir(), 'port-unbuilt-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('says to run `npm run build` instead of a module-not-found trace', () => {
    cpSync(join(ROOT, 'bin', 'port.js'), join(dir, 'bin', 'port.js'), { recursive: true });
    const r = spawnSync(process.execPath, [join(dir, 'bin', 'port.js'), '--version'], { encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr.trim()).toBe(`port: ${join(dir, 'dist', 'cli', 'main.js')} is missing: this checkout is not built; run \`npm run build\` in ${dirname(join(dir, 'bin'))}/`);
  });
});
