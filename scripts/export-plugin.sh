#!/usr/bin/env bash
# Exports the Buildkite plugin (plugin/) as the standalone tree of the repository
# `port-buildkite-plugin`, which is what Buildkite fetches for `your-org/port#v1.0.0`
# (https://buildkite.com/docs/pipelines/integrations/plugins/using#plugin-sources):
#
#   scripts/export-plugin.sh DIR [--git TAG]
#
# DIR gets the plugin's files at its root (plugin.yml, hooks/, lib/, bin/, tests/,
# README.md) and the project's LICENSE. DIR must not exist or be empty. With --git TAG
# (e.g. v1.0.0) DIR also becomes a git repository with one commit tagged TAG, ready to
# push: Buildkite pins a plugin to a tag after the `#`.
set -euo pipefail

usage() {
  printf 'usage: scripts/export-plugin.sh DIR [--git TAG]   (TAG like v1.0.0)\n' >&2
  exit 2
}

fail() {
  printf 'export-plugin: %s\n' "$*" >&2
  exit 1
}

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dest='' tag=''
while [[ $# -gt 0 ]]; do
  case "$1" in
    --git) [[ $# -ge 2 ]] || usage; tag=$2; shift 2 ;;
    --git=*) tag=${1#--git=}; shift ;;
    -h | --help) usage ;;
    -*) printf 'export-plugin: unknown option %s\n' "$1" >&2; usage ;;
    *) [[ -z "$dest" ]] || usage; dest=$1; shift ;;
  esac
done
[[ -n "$dest" ]] || usage
if [[ -n "$tag" && ! "$tag" =~ ^v[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.-]+)?$ ]]; then
  fail "--git needs a version tag like v1.0.0 (found \"${tag}\")"
fi

src="${root}/plugin"
[[ -f "${src}/plugin.yml" ]] || fail "${src}/plugin.yml is missing; run this from a checkout of Port"
[[ -f "${root}/LICENSE" ]] || fail "${root}/LICENSE is missing; a published plugin carries the project's license"
if [[ -e "$dest" ]]; then
  [[ -d "$dest" ]] || fail "${dest} exists and is not a directory"
  [[ -z "$(ls -A -- "$dest")" ]] || fail "${dest} is not empty; export into a new or empty directory"
fi
mkdir -p -- "$dest"
dest=$(cd -- "$dest" && pwd)

# The plugin's files keep their modes: the agent runs only executable hooks.
for entry in plugin.yml README.md hooks lib bin tests; do
  [[ -e "${src}/${entry}" ]] || fail "${src}/${entry} is missing"
  cp -R -p -- "${src}/${entry}" "${dest}/"
done
cp -p -- "${root}/LICENSE" "${dest}/LICENSE"

if [[ -n "$tag" ]]; then
  command -v git >/dev/null 2>&1 || fail 'git is not installed (needed for --git)'
  (
    cd -- "$dest"
    git init -q
    git symbolic-ref HEAD refs/heads/main
    # A commit needs an identity: the caller's as git sees it in the new repository, else a
    # stand-in (the committer's also names the tagger).
    git config user.name >/dev/null 2>&1 || export GIT_AUTHOR_NAME='Port plugin export' GIT_COMMITTER_NAME='Port plugin export'
    git config user.email >/dev/null 2>&1 || export GIT_AUTHOR_EMAIL='port-plugin-export@localhost' GIT_COMMITTER_EMAIL='port-plugin-export@localhost'
    git add -A
    git commit -q -m "port-buildkite-plugin ${tag}"
    git tag -a "$tag" -m "port-buildkite-plugin ${tag}"
  ) || fail "could not make ${dest} a git repository"
fi

printf 'Exported the Port Buildkite plugin to %s%s\n' "$dest" "${tag:+ (git repository, tag ${tag})}"
if [[ "$(basename -- "$dest")" != port-buildkite-plugin ]]; then
  printf 'Publish it as a repository named port-buildkite-plugin, so that steps can say your-org/port#%s.\n' "${tag:-v1.0.0}"
fi
