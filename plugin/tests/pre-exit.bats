#!/usr/bin/env bats
# hooks/pre-exit with a stubbed curl (and buildkite-agent for renewal): it revokes the
# job's Port tokens at the Port that issued them, removes its private directory, and
# never fails the job.

load helpers/plugin

BK_TOKEN=eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJidWlsZGtpdGUifQ.YnVpbGRraXRlLXNpZw

setup() {
  plugin_setup
  # What hooks/environment left: a private directory with the token, its Port and audience.
  STATE=$(mktemp -d "${TMPDIR}/port-plugin.XXXXXXXXXX")
  TOKEN=$(fake_jwt "$JOB_ID" 'aws-prod db-password')
  (umask 077 && printf '%s' "$TOKEN" >"${STATE}/port-token")
  printf '%s' "$PORT_URL_FOR_TESTS" >"${STATE}/url"
  printf '%s' "$PORT_URL_FOR_TESTS" >"${STATE}/audience"
  export PORT_PLUGIN_STATE_DIR=$STATE
  # The step may point the options elsewhere since; the token goes only to its own Port.
  export BUILDKITE_PLUGIN_PORT_URL=https://staging-port.example.com
}

REVOKED='{"revoked":{"scope":"job","id":"0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"}}'

@test "revokes every Port token of the job at the Port that issued them, and removes the directory" {
  stub buildkite-agent
  stub curl "$(curl_answer "${PORT_URL_FOR_TESTS}/v1/revocations" 200 "$REVOKED")"

  run_hook pre-exit

  [ "$status" -eq 0 ]
  assert_output_contains "Port: revoked this job's Port tokens"
  unstub curl
  unstub buildkite-agent
  assert_equal "$(request 1 config)" "header = \"Authorization: Bearer ${TOKEN}\""
  assert_equal "$(jq -cS . <(request 1 body))" "{\"id\":\"${JOB_ID}\",\"reason\":\"pre-exit hook\",\"scope\":\"job\"}"
  [ ! -e "$STATE" ]
  refute_job_env PORT_PLUGIN_STATE_DIR
  refute_output_contains "$TOKEN"
}

@test "Port unreachable: reported, the job does not fail, the directory is removed" {
  stub curl "* -- ${PORT_URL_FOR_TESTS}/v1/revocations : cat >/dev/null; echo 'curl: (6) Could not resolve host: port.example.com' >&2; exit 6"

  run_hook pre-exit

  [ "$status" -eq 0 ]
  assert_output_contains "cannot reach Port at ${PORT_URL_FOR_TESTS}/v1/revocations (curl exit 6: curl: (6) Could not resolve host: port.example.com)" \
    "the job's Port tokens were not revoked; they expire on their own"
  unstub curl
  [ ! -e "$STATE" ]
}

@test "Port refuses the revocation: its reason is reported, the job does not fail" {
  stub curl "$(curl_answer "${PORT_URL_FOR_TESTS}/v1/revocations" 403 '{"error":"insufficient_scope","error_description":"a job may revoke only itself"}')"

  run_hook pre-exit

  [ "$status" -eq 0 ]
  assert_output_contains "revoking the job's Port tokens refused by Port (HTTP 403 insufficient_scope: a job may revoke only itself); they expire on their own"
  unstub curl
  [ ! -e "$STATE" ]
}

@test "an expired token is renewed through the agent first, then used to revoke" {
  export BUILDKITE_AGENT_JOB_API_SOCKET="${BATS_TEST_TMPDIR}/job-api.sock"
  (umask 077 && fake_jwt "$JOB_ID" 'aws-prod db-password' -30 >"${STATE}/port-token")
  RENEWED=$(fake_jwt "$JOB_ID" 'aws-prod db-password')
  stub buildkite-agent \
    "oidc request-token --audience ${PORT_URL_FOR_TESTS} --claim ${OIDC_CLAIMS} : echo ${BK_TOKEN}" \
    "redactor add --format json : cat >${BATS_TEST_TMPDIR}/redacted.json"
  stub curl \
    "$(curl_answer "${PORT_URL_FOR_TESTS}/oauth/token" 200 "$(exchange_answer "$RENEWED" 'aws-prod db-password')")" \
    "$(curl_answer "${PORT_URL_FOR_TESTS}/v1/revocations" 200 "$REVOKED")"

  run_hook pre-exit

  [ "$status" -eq 0 ]
  assert_output_contains "Port: revoked this job's Port tokens"
  unstub buildkite-agent
  unstub curl
  # The renewal asked for the scopes the old token held, and registered the new token.
  [[ "$(request 1 body)" == *"&scope=aws-prod%20db-password&subject_token=${BK_TOKEN}" ]]
  assert_equal "$(jq -r .port_token "${BATS_TEST_TMPDIR}/redacted.json")" "$RENEWED"
  assert_equal "$(request 2 config)" "header = \"Authorization: Bearer ${RENEWED}\""
  [ ! -e "$STATE" ]
}

@test "nothing was issued (the environment hook failed): nothing to revoke, Port is not called" {
  rm -f "${STATE}/port-token" "${STATE}/url"
  stub curl

  run_hook pre-exit

  [ "$status" -eq 0 ]
  assert_output_contains 'no Port token was issued to this job; nothing to revoke'
  unstub curl
  [ ! -e "$STATE" ]
}

@test "no state directory (the plugin did not run): silent no-op" {
  unset PORT_PLUGIN_STATE_DIR
  rm -rf "$STATE"
  stub curl

  run_hook pre-exit

  [ "$status" -eq 0 ]
  assert_equal "$output" ''
  unstub curl
}

@test "PORT_PLUGIN_STATE_DIR changed by the step to a directory not its own: nothing is removed or sent" {
  victim=$(mktemp -d "${TMPDIR}/victim.XXXXXX")
  export PORT_PLUGIN_STATE_DIR=$victim
  cp "${STATE}/port-token" "${STATE}/url" "$victim/"
  stub curl

  run_hook pre-exit

  [ "$status" -eq 0 ]
  assert_output_contains 'PORT_PLUGIN_STATE_DIR does not name this plugin'"'"'s directory; not revoking or removing anything'
  unstub curl
  [ -d "$victim" ]
}

@test "curl or jq missing: says which, the job does not fail, the directory is removed" {
  local cmd
  for cmd in curl jq; do
    PATH=$(path_without "$cmd") run_hook pre-exit

    [ "$status" -eq 0 ]
    assert_output_contains "${cmd} is not on this agent's PATH; cannot revoke this job's Port tokens"
    [ ! -e "$STATE" ]
    STATE=$(mktemp -d "${TMPDIR}/port-plugin.XXXXXXXXXX")
    printf '%s' "$TOKEN" >"${STATE}/port-token"
    printf '%s' "$PORT_URL_FOR_TESTS" >"${STATE}/url"
    export PORT_PLUGIN_STATE_DIR=$STATE
  done
}
