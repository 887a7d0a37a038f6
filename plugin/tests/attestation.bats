#!/usr/bin/env bats
# Pools whose agents must attest, and pools that bind Port tokens to the agent host (DPoP):
# what the environment hook says when Port refuses the agent, and how it exchanges through
# Port's CLI (a stubbed `port`) when the agent host has a host key.

load helpers/plugin

BK_TOKEN=eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJidWlsZGtpdGUifQ.YnVpbGRraXRlLXNpZw
DB_SECRET=db-pass-Hq8Zr2Lw4
NOT_ATTESTED='Agent 0190aaaa-bbbb-7ccc-8ddd-eeeeffff0000 has no current aws_iam attestation for pool linux/deploy; run `port agent attest` on the agent host (its environment or pre-bootstrap hook).'
HOST_BOUND='Pool linux/deploy is host-bound: the token must be bound to the agent host'"'"'s key with a DPoP proof (port token exchange --dpop-key, or port agent proxy).'

setup() {
  plugin_setup
  export BUILDKITE_PLUGIN_PORT_URL=$PORT_URL_FOR_TESTS
  export BUILDKITE_PLUGIN_PORT_SECRETS_DB_PASSWORD=db-password
  HOST_KEY="${XDG_STATE_HOME}/port/host-key.jwk"
  PORT_TOKEN_VALUE=$(fake_jwt "$JOB_ID" db-password)
}

# answer_file TEXT: a file holding TEXT, for a stub to print (no quoting through eval).
answer_file() {
  local file
  file=$(mktemp "${BATS_TEST_TMPDIR}/text.XXXXXX")
  printf '%s' "$1" >"$file"
  printf '%s' "$file"
}

# A host key where `port agent attest` keeps it (the stubbed port never reads it).
make_host_key() {
  mkdir -p -m 700 "$(dirname "$HOST_KEY")"
  printf '{"kty":"EC"}\n' >"$HOST_KEY"
  chmod 600 "$HOST_KEY"
  # What `port agent attest` writes when Port says the pool is host-bound.
  printf 'true\n' >"${HOST_KEY}.host-bound"
}

secret_answer() {
  jq -cn --arg name "$1" --arg value "$2" '{name: $name, value: $value, expires_at: "2030-01-01T00:00:00Z"}'
}

@test "an agent that has not attested: Port's reason, then what to run on the agent host and where it is documented" {
  stub buildkite-agent "oidc request-token --audience ${PORT_URL_FOR_TESTS} --claim ${OIDC_CLAIMS} : echo ${BK_TOKEN}"
  stub curl "$(curl_answer "${PORT_URL_FOR_TESTS}/oauth/token" 403 "$(jq -cn --arg d "$NOT_ATTESTED" '{error: "access_denied", error_description: $d}')")"

  run_hook environment

  [ "$status" -ne 0 ]
  unstub buildkite-agent
  unstub curl
  assert_output_contains "token exchange refused by Port (HTTP 403 access_denied: ${NOT_ATTESTED})" \
    'this agent has not attested for its pool' \
    "run \`port agent attest --url <Port's URL>\` from the agent's environment hook (or its pre-bootstrap hook)" \
    'docs/guides/agent-attestation.md'
  refute_job_env DB_PASSWORD
  assert_equal "$(state_dirs)" ''
}

@test "a host-bound pool and no port CLI or host key here: says what the agent host needs" {
  stub buildkite-agent "oidc request-token --audience ${PORT_URL_FOR_TESTS} --claim ${OIDC_CLAIMS} : echo ${BK_TOKEN}"
  stub curl "$(curl_answer "${PORT_URL_FOR_TESTS}/oauth/token" 403 "$(jq -cn --arg d "$HOST_BOUND" '{error: "access_denied", error_description: $d}')")"

  run_hook environment

  [ "$status" -ne 0 ]
  unstub buildkite-agent
  unstub curl
  assert_output_contains 'this pool binds Port tokens to the agent host' "Port's CLI (port) is on the agent's PATH" "$HOST_KEY" 'docs/guides/agent-attestation.md'
  refute_output_contains 'this agent has not attested'
}

@test "other refusals get no attestation advice" {
  stub buildkite-agent "oidc request-token --audience ${PORT_URL_FOR_TESTS} --claim ${OIDC_CLAIMS} : echo ${BK_TOKEN}"
  stub curl "$(curl_answer "${PORT_URL_FOR_TESTS}/oauth/token" 403 '{"error":"access_denied","error_description":"Denied by policy prod-only-main: only main deploys"}')"

  run_hook environment

  [ "$status" -ne 0 ]
  unstub buildkite-agent
  unstub curl
  refute_output_contains 'port agent attest' 'agent-attestation.md'
}

@test "with port on PATH and the host key: exchanges with a DPoP proof through port, and fetches secrets through it" {
  plugin_config "{\"aws-profile\":\"aws-prod\",\"secrets\":{\"DB_PASSWORD\":\"db-password\"},\"url\":\"${PORT_URL_FOR_TESTS}\"}"
  export BUILDKITE_PLUGIN_PORT_AWS_PROFILE=aws-prod
  make_host_key
  PORT_TOKEN_VALUE=$(fake_jwt "$JOB_ID" 'aws-prod db-password')
  bound=$(jq -cn --arg t "$PORT_TOKEN_VALUE" '{access_token: $t, issued_token_type: "urn:ietf:params:oauth:token-type:access_token", token_type: "DPoP", expires_in: 900, scope: "aws-prod db-password"}')
  stub buildkite-agent \
    "oidc request-token --audience ${PORT_URL_FOR_TESTS} --claim ${OIDC_CLAIMS} : echo ${BK_TOKEN}" \
    "redactor add --format json : cat >/dev/null"
  stub port \
    "token exchange --url ${PORT_URL_FOR_TESTS} --stdin --json --dpop-key ${HOST_KEY} --scope aws-prod db-password : cat >${BATS_TEST_TMPDIR}/exchange.stdin; cat $(answer_file "$bound")" \
    "creds db-password --url ${PORT_URL_FOR_TESTS} --dpop-key ${HOST_KEY} : printf '%s' \"\$PORT_TOKEN\" >${BATS_TEST_TMPDIR}/creds.token; cat $(answer_file "$(secret_answer db-password "$DB_SECRET")")"
  stub curl

  run_hook environment

  [ "$status" -eq 0 ]
  unstub buildkite-agent
  unstub port
  unstub curl
  assert_output_contains "this agent host has a host key (${HOST_KEY})" 'Port bound the token to this host (DPoP)' 'Exported DB_PASSWORD (secret db-password)'
  # The Buildkite token went to port on stdin, the Port token in its environment: neither in an argv.
  assert_equal "$(cat "${BATS_TEST_TMPDIR}/exchange.stdin")" "$BK_TOKEN"
  assert_equal "$(cat "${BATS_TEST_TMPDIR}/creds.token")" "$PORT_TOKEN_VALUE"
  assert_equal "$(job_env DB_PASSWORD)" "$DB_SECRET"
  state=$(job_env PORT_PLUGIN_STATE_DIR)
  assert_equal "$(cat "${state}/dpop-key")" "$HOST_KEY"
  assert_equal "$(stat -c %a "${state}/dpop-key")" 600
  refute_output_contains "$PORT_TOKEN_VALUE" "$DB_SECRET" "$BK_TOKEN"

  # The AWS profile's credential_process proves the key too (through port), never curl.
  aws='{"Version":1,"AccessKeyId":"ASIAEXAMPLE","SecretAccessKey":"aws-secret-Zq8","SessionToken":"aws-session-Lw4","Expiration":"2030-01-01T00:00:00Z"}'
  stub port "creds aws-prod --url ${PORT_URL_FOR_TESTS} --dpop-key ${HOST_KEY} : [[ \"\$PORT_TOKEN\" == ${PORT_TOKEN_VALUE} ]] || exit 9; cat $(answer_file "$aws")"
  stub curl
  unset BUILDKITE_AGENT_JOB_API_SOCKET
  run "${PLUGIN_ROOT}/bin/port-credential-process" --format aws --token-file "${state}/port-token" aws-prod
  [ "$status" -eq 0 ]
  assert_equal "$output" "$aws"
  unstub port
  unstub curl
}

@test "port refuses through the CLI: Port's status and reason come through, with the attestation advice" {
  make_host_key
  stub buildkite-agent "oidc request-token --audience ${PORT_URL_FOR_TESTS} --claim ${OIDC_CLAIMS} : echo ${BK_TOKEN}"
  stub port "token exchange * : cat >/dev/null; cat $(answer_file "port: token exchange refused (403 access_denied): ${NOT_ATTESTED}") >&2; exit 1"
  stub curl

  run_hook environment

  [ "$status" -ne 0 ]
  unstub buildkite-agent
  unstub port
  unstub curl
  assert_output_contains "token exchange refused by Port (HTTP 403 access_denied: ${NOT_ATTESTED})" 'this agent has not attested for its pool'
  assert_equal "$(state_dirs)" ''
}

@test "port failing without an answer from Port: the hook fails with its message" {
  make_host_key
  stub buildkite-agent "oidc request-token --audience ${PORT_URL_FOR_TESTS} --claim ${OIDC_CLAIMS} : echo ${BK_TOKEN}"
  stub port "token exchange * : cat >/dev/null; echo 'port: token exchange failed: The host key file ${HOST_KEY} can be read or written by group or others (mode 644)' >&2; exit 1"

  run_hook environment

  [ "$status" -ne 0 ]
  unstub port
  assert_output_contains 'token exchange failed: port exited 1: port: token exchange failed: The host key file'
}

@test "port on PATH but no host key on this agent: the exchange is the plain one, port is not called" {
  stub buildkite-agent \
    "oidc request-token --audience ${PORT_URL_FOR_TESTS} --claim ${OIDC_CLAIMS} : echo ${BK_TOKEN}" \
    "redactor add --format json : cat >/dev/null"
  stub port
  stub curl \
    "$(curl_answer "${PORT_URL_FOR_TESTS}/oauth/token" 200 "$(exchange_answer "$PORT_TOKEN_VALUE" db-password)")" \
    "$(curl_answer "${PORT_URL_FOR_TESTS}/v1/credentials/db-password" 200 "$(secret_answer db-password "$DB_SECRET")")"

  run_hook environment

  [ "$status" -eq 0 ]
  unstub buildkite-agent
  unstub port
  unstub curl
  state=$(job_env PORT_PLUGIN_STATE_DIR)
  [ ! -e "${state}/dpop-key" ]
}

@test "a host key that attest did not mark host-bound (an attested pool without host_bound): the plain exchange, port is not called" {
  make_host_key
  rm "${HOST_KEY}.host-bound"
  stub buildkite-agent \
    "oidc request-token --audience ${PORT_URL_FOR_TESTS} --claim ${OIDC_CLAIMS} : echo ${BK_TOKEN}" \
    "redactor add --format json : cat >/dev/null"
  stub port
  stub curl \
    "$(curl_answer "${PORT_URL_FOR_TESTS}/oauth/token" 200 "$(exchange_answer "$PORT_TOKEN_VALUE" db-password)")" \
    "$(curl_answer "${PORT_URL_FOR_TESTS}/v1/credentials/db-password" 200 "$(secret_answer db-password "$DB_SECRET")")"

  run_hook environment

  [ "$status" -eq 0 ]
  unstub buildkite-agent
  unstub port
  unstub curl
  state=$(job_env PORT_PLUGIN_STATE_DIR)
  [ ! -e "${state}/dpop-key" ]
}

@test "a token Port did not bind (a pool that is not host-bound): secrets through curl as a Bearer token" {
  make_host_key
  export PORT_HOST_KEY=$HOST_KEY
  stub buildkite-agent \
    "oidc request-token --audience ${PORT_URL_FOR_TESTS} --claim ${OIDC_CLAIMS} : echo ${BK_TOKEN}" \
    "redactor add --format json : cat >/dev/null"
  stub port "token exchange --url ${PORT_URL_FOR_TESTS} --stdin --json --dpop-key ${HOST_KEY} --scope db-password : cat >/dev/null; cat $(answer_file "$(exchange_answer "$PORT_TOKEN_VALUE" db-password)")"
  stub curl "$(curl_answer "${PORT_URL_FOR_TESTS}/v1/credentials/db-password" 200 "$(secret_answer db-password "$DB_SECRET")")"

  run_hook environment

  [ "$status" -eq 0 ]
  unstub port
  unstub curl
  assert_equal "$(request 1 config)" "header = \"Authorization: Bearer ${PORT_TOKEN_VALUE}\""
  state=$(job_env PORT_PLUGIN_STATE_DIR)
  [ ! -e "${state}/dpop-key" ]
}
