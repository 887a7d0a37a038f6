# shellcheck shell=bash
# Shared by the .bats files: a clean job environment, the plugin options as the agent
# passes them, fake tokens, canned answers from Port for the stubbed curl, and running a
# hook the way the agent does (sourced by bash; what it exports is read back).
#
# The agent turns each option into BUILDKITE_PLUGIN_PORT_<OPTION> (lists as _0, _1, …,
# maps as _<KEY>) and puts the whole configuration as JSON in BUILDKITE_PLUGIN_CONFIGURATION
# (https://buildkite.com/docs/pipelines/integrations/plugins/writing). Tests set both
# explicitly, as buildkite-plugin-tester's tests do.

PLUGIN_ROOT=$(cd "${BATS_TEST_DIRNAME}/.." && pwd)
HELPERS="${PLUGIN_ROOT}/tests/helpers"
# shellcheck source=plugin/tests/helpers/stub.bash
. "${HELPERS}/stub.bash"

readonly PORT_URL_FOR_TESTS=https://port.example.com
readonly OIDC_CLAIMS=organization_id,pipeline_id,cluster_id,cluster_name,queue_id,queue_key
readonly JOB_ID=0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b

plugin_setup() {
  local name
  # Nothing from the environment bats runs in (say, a real Buildkite job) reaches the hooks.
  for name in $(compgen -e); do
    case "$name" in
      BUILDKITE* | PORT_* | AWS_*) unset "$name" ;;
    esac
  done
  export TMPDIR="${BATS_TEST_TMPDIR}/tmp"
  export FAKE_CURL_LOG="${BATS_TEST_TMPDIR}/requests"
  mkdir -p "$TMPDIR" "$FAKE_CURL_LOG"
  export BUILDKITE=true
  export BUILDKITE_JOB_ID=$JOB_ID
  export BUILDKITE_AGENT_ACCESS_TOKEN=agent-job-token-not-for-tests
  export BUILDKITE_PLUGIN_NAME=PORT
  # No host key from the machine the tests run on (lib/port.bash, port_host_key_path).
  export HOME="${BATS_TEST_TMPDIR}/home"
  export XDG_STATE_HOME="${BATS_TEST_TMPDIR}/state"
  mkdir -p "$HOME"
  ENV_AFTER="${BATS_TEST_TMPDIR}/env.after"
}

# plugin_config JSON: the configuration as the agent hands it over (JSON copy only; the
# test exports the option variables itself).
plugin_config() {
  export BUILDKITE_PLUGIN_CONFIGURATION=$1
}

# fake_jwt SUB SCOPE [SECONDS_TO_EXPIRY]: a token shaped like Port's (the plugin reads
# only its payload; Port checks signatures).
fake_jwt() {
  local now payload
  now=$(date +%s)
  payload=$(printf '{"iss":"https://port.example.com","sub":"%s","scope":"%s","iat":%s,"exp":%s}' "$1" "$2" "$now" "$((now + ${3:-900}))")
  printf 'eyJhbGciOiJFUzI1NiJ9.%s.c2lnbmF0dXJl' "$(printf '%s' "$payload" | base64 -w0 | tr '+/' '-_' | tr -d '=')"
}

# curl_answer URL STATUS BODY: a stub plan line for curl: a request to URL (the last
# argument) is recorded by fake-curl and answered with STATUS and BODY.
curl_answer() {
  local file
  file=$(mktemp "${BATS_TEST_TMPDIR}/answer.XXXXXX")
  printf '%s\n%s' "$3" "$2" >"$file"
  printf '* -- %s : %q %q "$@"' "$1" "${HELPERS}/fake-curl" "$file"
}

# exchange_answer TOKEN SCOPE: Port's RFC 8693 answer.
exchange_answer() {
  printf '{"access_token":"%s","issued_token_type":"urn:ietf:params:oauth:token-type:jwt","token_type":"Bearer","expires_in":900,"scope":"%s"}' "$1" "$2"
}

# request N PART: what fake-curl recorded of the Nth request (url, config or body).
request() {
  cat -- "${FAKE_CURL_LOG}/${1}.${2}"
}

# run_hook PHASE: sources hooks/PHASE in a fresh bash as the agent does; $status and
# $output (stdout and stderr) as bats' `run` sets them; the environment the job would
# carry on with is then read by job_env.
run_hook() {
  rm -f "$ENV_AFTER"
  # shellcheck disable=SC2016
  run bash -c '. "$1"; rc=$?; env -0 >"$2"; exit "$rc"' run_hook "${PLUGIN_ROOT}/hooks/$1" "$ENV_AFTER"
}

# job_env NAME: the value the hook left in the job's environment; fails when unset.
job_env() {
  local entry
  [[ -f "$ENV_AFTER" ]] || return 1
  while IFS= read -r -d '' entry; do
    if [[ "${entry%%=*}" == "$1" ]]; then
      printf '%s' "${entry#*=}"
      return 0
    fi
  done <"$ENV_AFTER"
  return 1
}

# state_dirs: the plugin's private directories left under TMPDIR.
state_dirs() {
  find "$TMPDIR" -maxdepth 1 -name 'port-plugin.*' -print
}

# path_without CMD…: a PATH that has everything in /usr/bin and /bin but CMD (an agent
# where CMD is not installed); the stubs' directory stays first.
path_without() {
  "${HELPERS}/path-without" "${BATS_TEST_TMPDIR}/path-without" "$@"
  printf '%s:%s' "$(stub_dir)/bin" "${BATS_TEST_TMPDIR}/path-without"
}

# assert_output_contains TEXT…: each TEXT is in $output (fixed strings).
assert_output_contains() {
  local text
  for text in "$@"; do
    if [[ "$output" != *"$text"* ]]; then
      printf 'expected the output to contain:\n  %s\noutput was:\n%s\n' "$text" "$output" >&2
      return 1
    fi
  done
}

# refute_output_contains TEXT…
refute_output_contains() {
  local text
  for text in "$@"; do
    if [[ "$output" == *"$text"* ]]; then
      printf 'expected the output not to contain:\n  %s\noutput was:\n%s\n' "$text" "$output" >&2
      return 1
    fi
  done
}

# assert_equal ACTUAL EXPECTED
assert_equal() {
  if [[ "$1" != "$2" ]]; then
    printf 'expected:\n  %s\nactual:\n  %s\n' "$2" "$1" >&2
    return 1
  fi
}

# refute_job_env NAME: the hook left no NAME in the job's environment. (A bare `! cmd`
# does not fail a bats test: set -e ignores negated commands.)
refute_job_env() {
  local value
  if value=$(job_env "$1"); then
    printf 'expected %s not to be exported; it is (%s characters)\n' "$1" "${#value}" >&2
    return 1
  fi
}
