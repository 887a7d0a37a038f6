/**
 * Where the Buildkite agent gets a plugin from, and the directory it checks it out to,
 * following `buildkite/agent:agent/plugin/plugin.go` (`CreatePlugin`, `Repository`,
 * `Identifier`) and the agent's expansion of short names (`thing` →
 * `github.com/buildkite-plugins/thing-buildkite-plugin`, `org/thing` →
 * `github.com/org/thing-buildkite-plugin`). Documented at
 * https://buildkite.com/docs/pipelines/integrations/plugins/using#plugin-sources: a full
 * git URL is used as written, and a path starting with `.` is a vendored plugin in the
 * job's checkout (nothing is cloned).
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { join } from 'node:path';

const execFileP = promisify(execFile);

export type PluginSource = { kind: 'git'; repository: string; version: string | undefined } | { kind: 'vendored'; path: string };

/** The short forms spelled out, as the agent does before parsing the location. */
function fullSource(location: string): string {
  if (location.startsWith('.') || location.startsWith('/') || location.includes('://')) return location;
  const hash = location.indexOf('#');
  const path = hash === -1 ? location : location.slice(0, hash);
  const ref = hash === -1 ? '' : location.slice(hash);
  const parts = path.split('/');
  if (parts.length === 1) return `github.com/buildkite-plugins/${path}-buildkite-plugin${ref}`;
  if (parts.length === 2 && !path.endsWith('-buildkite-plugin')) return `github.com/${path}-buildkite-plugin${ref}`;
  if (parts.length === 2) return `github.com/${path}${ref}`;
  return location;
}

/** `CreatePlugin`: scheme, host + path, and the fragment as the version. */
function parse(location: string): { scheme: string; auth: string; path: string; version: string } {
  const full = fullSource(location);
  const hash = full.indexOf('#');
  const version = hash === -1 ? '' : full.slice(hash + 1);
  const rest = hash === -1 ? full : full.slice(0, hash);
  const m = /^([a-z][a-z0-9+.-]*):\/\/(?:([^@/]*)@)?(.*)$/i.exec(rest);
  return m ? { scheme: m[1]!, auth: m[2] ?? '', path: m[3]!, version } : { scheme: '', auth: '', path: rest, version };
}

export function pluginSource(location: string): PluginSource {
  const { scheme, auth, path, version } = parse(location);
  if (path.startsWith('.')) return { kind: 'vendored', path };
  // `constructRepositoryHost`: github.com/org/repo; elsewhere the path up to a `.git` segment.
  const parts = path.split('/');
  let host: string;
  if (parts[0] === 'github.com' || parts[0] === 'bitbucket.org') host = parts.slice(0, 3).join('/');
  else {
    const i = parts.findIndex((p) => p.endsWith('.git'));
    host = (i === -1 ? parts : parts.slice(0, i + 1)).join('/');
  }
  const withAuth = auth ? `${auth}@${host}` : host;
  const repository = withAuth.startsWith('/') ? withAuth : `${scheme || 'https'}://${withAuth}`;
  return { kind: 'git', repository, version: version || undefined };
}

/** `Identifier`: the label (location#version) with runs of non-alphanumerics as one `-`. */
export function pluginIdentifier(location: string): string {
  const { path, version } = parse(location);
  const label = version ? `${path}#${version}` : path;
  return label.replace(/[^a-zA-Z0-9]+/g, '-').replace(/^-+|-+$/g, '');
}

/**
 * Checks a git plugin out into `pluginsPath` as the agent does (`git clone -- repository dir`,
 * then `git checkout -f version`). `gitConfig` is passed as `-c` options, e.g. a
 * `url.<base>.insteadOf` that serves github.com from a local directory.
 */
export async function checkoutPlugin(location: string, pluginsPath: string, gitConfig: string[] = []): Promise<string> {
  const source = pluginSource(location);
  if (source.kind !== 'git') throw new Error(`${location} is a vendored plugin; there is nothing to check out`);
  const dir = join(pluginsPath, pluginIdentifier(location));
  const config = gitConfig.flatMap((c) => ['-c', c]);
  await execFileP('git', [...config, 'clone', '-q', '--', source.repository, dir]);
  if (source.version) await execFileP('git', ['-c', 'advice.detachedHead=false', 'checkout', '-q', '-f', source.version], { cwd: dir });
  return dir;
}
