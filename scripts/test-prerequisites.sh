#!/usr/bin/env bash
# Run by `npm test` before the suite: the system programs the tests drive for real.
#   chromium  the approval pages' browser tests (Debian's build; never a downloaded browser)
#   git, curl the relay's real clients (git over smart HTTP, curl)
#   jq        the Buildkite plugin's hooks parse Port's JSON with it
#   bats      the plugin's own tests, as Buildkite's plugin tester runs them
# Missing ones are installed with apt-get when this user can (root, or sudo without a
# password); otherwise the script stops at once with the exact command to run.
set -euo pipefail

missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
for cmd in git curl jq bats; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
done
[ ${#missing[@]} -eq 0 ] && exit 0

install="apt-get install -y ${missing[*]}"
if command -v apt-get >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ]; then
    sudo=()
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo=(sudo -n)
  else
    echo "npm test: the suite needs ${missing[*]}; install with: sudo apt-get update && sudo $install" >&2
    exit 1
  fi
  echo "npm test: installing ${missing[*]} (apt-get)" >&2
  "${sudo[@]}" apt-get update -qq
  # env after sudo: sudo resets the environment, so the variable must reach apt-get through it.
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  exit 0
fi
echo "npm test: the suite needs ${missing[*]} (Debian/Ubuntu: sudo apt-get update && sudo $install); install them with your system's package manager" >&2
exit 1
