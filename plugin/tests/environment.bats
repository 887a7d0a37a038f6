#!/usr/bin/env bats
# hooks/environment with a stubbed buildkite-agent and curl (and the real jq): what it
# asks the agent and Port, what it registers with the log redactor, what it exports, and
# how it fails.

load helpers/plugin

# A secret with everything a shell or a JSON encoder could get wrong.
NPM_SECRET=$'npm_Zq8 "quoted" $HOME `tick` \'single\' \\ back\nsecond line\n'
DB_SECRET=db-pass-Hq8Zr2Lw4
BK_TOKEN=eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJidWlsZGtpdGUifQ.YnVpbGRraXRlLXNpZw

setup() {
  plugin_setup
  PORT_TOKEN_VALUE=$(fake_jwt "$JOB_ID" 'deploy-token aws-prod db-password npm-publish')
}

secret_answer() {
  jq -cn --arg name "$1" --arg value "$2" '{name: $name, value: $value, expires_at: "2030-01-01T00:00:00Z"}'
}

@test "exchanges the job's Buildkite token, exports PORT_TOKEN, the secrets and an AWS profile" {
  plugin_config "{\"aws-profile\":\"aws-prod\",\"aws-region\":\"eu-west-1\",\"export-token\":true,\"scopes\":[\"deploy-token\"],\"secrets\":{\"DB_PASSWORD\":\"db-password\",\"NPM_TOKEN\":\"npm-publish\"},\"url\":\"${PORT_URL_FOR_TESTS}\"}"
  export BUILDKITE_PLUGIN_PORT_URL=$PORT_URL_FOR_TESTS
  export BUILDKITE_PLUGIN_PORT_EXPORT_TOKEN=true
  export BUILDKITE_PLUGIN_PORT_SCOPES_0=deploy-token
  export BUILDKITE_PLUGIN_PORT_AWS_PROFILE=aws-prod
  export BUILDKITE_PLUGIN_PORT_AWS_REGION=eu-west-1
  export BUILDKITE_PLUGIN_PORT_SECRETS_NPM_TOKEN=npm-publish
  export BUILDKITE_PLUGIN_PORT_SECRETS_DB_PASSWORD=db-password

  stub buildkite-agent \
    "oidc request-token --audience ${PORT_URL_FOR_TESTS} --claim ${OIDC_CLAIMS} : echo ${BK_TOKEN}" \
    "redactor add --format json : cat >${BATS_TEST_TMPDIR}/redacted.json"
  stub curl \
    "$(curl_answer "${PORT_URL_FOR_TESTS}/oauth/token" 200 "$(exchange_answer "$PORT_TOKEN_VALUE" 'deploy-token aws-prod db-password npm-publish')")" \
    "$(curl_answer "${PORT_URL_FOR_TESTS}/v1/credentials/db-password" 200 "$(secret_answer db-password "$DB_SECRET")")" \
    "$(curl_answer "${PORT_URL_FOR_TESTS}/v1/credentials/npm-publish" 200 "$(secret_answer npm-publish "$NPM_SECRET")")"

  run_hook environment

  [ "$status" -eq 0 ]
  assert_output_contains "Port granted: deploy-token aws-prod db-password npm-publish" \
    'Exported PORT_TOKEN' 'Exported NPM_TOKEN (secret npm-publish)' 'Exported DB_PASSWORD (secret db-password)' \
    'Exported AWS_PROFILE=aws-prod'
  unstub buildkite-agent
  unstub curl

  # The exchange: RFC 8693 form fields, the Buildkite token as subject, no bearer header.
  assert_equal "$(request 1 url)" "${PORT_URL_FOR_TESTS}/oauth/token"
  assert_equal "$(request 1 body)" "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange&subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Ajwt&scope=deploy-token%20aws-prod%20db-password%20npm-publish&subject_token=${BK_TOKEN}"
  assert_equal "$(request 1 config)" ''
  # Each secret with the Port token as the bearer, from the curl config (never argv).
  assert_equal "$(request 2 config)" "header = \"Authorization: Bearer ${PORT_TOKEN_VALUE}\""
  assert_equal "$(request 3 url)" "${PORT_URL_FOR_TESTS}/v1/credentials/npm-publish"

  # Exported exactly, newlines and quotes included.
  assert_equal "$(job_env PORT_TOKEN)" "$PORT_TOKEN_VALUE"
  assert_equal "$(job_env DB_PASSWORD)" "$DB_SECRET"
  npm=$(job_env NPM_TOKEN; printf x)
  assert_equal "${npm%x}" "$NPM_SECRET"

  # The private state: 0700 directory, 0600 token, the Port that issued it, the audience.
  state=$(job_env PORT_PLUGIN_STATE_DIR)
  [[ "$state" == "${TMPDIR}/port-plugin."* ]]
  assert_equal "$(stat -c %a "$state")" 700
  assert_equal "$(stat -c %a "${state}/port-token")" 600
  assert_equal "$(cat "${state}/port-token")" "$PORT_TOKEN_VALUE"
  assert_equal "$(cat "${state}/url")" "$PORT_URL_FOR_TESTS"
  assert_equal "$(cat "${state}/audience")" "$PORT_URL_FOR_TESTS"

  # The AWS profile runs the plugin's credential_process with the token file.
  assert_equal "$(job_env AWS_PROFILE)" aws-prod
  assert_equal "$(job_env AWS_CONFIG_FILE)" "${state}/aws-config"
  assert_equal "$(cat "${state}/aws-config")" "# Written by the Port plugin for job ${JOB_ID}; removed by its pre-exit hook.
[profile aws-prod]
credential_process = \"${PLUGIN_ROOT}/bin/port-credential-process\" --format aws --url \"${PORT_URL_FOR_TESTS}\" --token-file \"${state}/port-token\" aws-prod
region = eu-west-1"

  # Nothing secret in the log.
  refute_output_contains "$PORT_TOKEN_VALUE" "$DB_SECRET" "npm_Zq8" "$BK_TOKEN"
}

@test "registers the Port token and every secret with the log redactor, exactly, before exporting" {
  export BUILDKITE_PLUGIN_PORT_URL=$PORT_URL_FOR_TESTS
  export BUILDKITE_PLUGIN_PORT_SECRETS_NPM_TOKEN=npm-publish
  export BUILDKITE_PLUGIN_PORT_SECRETS_DB_PASSWORD=db-password
  PORT_TOKEN_VALUE=$(fake_jwt "$JOB_ID" 'db-password npm-publish')
  stub buildkite-agent \
    "oidc request-token --audience ${PORT_URL_FOR_TESTS} --claim ${OIDC_CLAIMS} : echo ${BK_TOKEN}" \
    "redactor add --format json : cat >${BATS_TEST_TMPDIR}/redacted.json"
  stub curl \
    "$(curl_answer "${PORT_URL_FOR_TESTS}/oauth/token" 200 "$(exchange_answer "$PORT_TOKEN_VALUE" 'db-password npm-publish')")" \
    "$(curl_answer "${PORT_URL_FOR_TESTS}/v1/credentials/db-password" 200 "$(secret_answer db-password "$DB_SECRET")")" \
    "$(curl_answer "${PORT_URL_FOR_TESTS}/v1/credentials/npm-publish" 200 "$(secret_answer npm-publish "$NPM_SECRET")")"

  run_hook environment

  [ "$status" -eq 0 ]
  unstub buildkite-agent
  unstub curl
  # One call with every value: the JSON format takes values exactly, newlines included.
  for value in "$PORT_TOKEN_VALUE" "$DB_SECRET" "$NPM_SECRET"; do
    jq -e --arg v "$value" '[.[]] | index($v) != null' "${BATS_TEST_TMPDIR}/redacted.json" >/dev/null
  done
  assert_equal "$(jq 'length' "${BATS_TEST_TMPDIR}/redacted.json")" 3
}

@test "a redactor that fails: the hook fails and exports nothing" {
  export BUILDKITE_PLUGIN_PORT_URL=$PORT_URL_FOR_TESTS
  export BUILDKITE_PLUGIN_PORT_SECRETS_DB_PASSWORD=db-password
  PORT_TOKEN_VALUE=$(fake_jwt "$JOB_ID" db-password)
  stub buildkite-agent \
    "oidc request-token --audience ${PORT_URL_FOR_TESTS} --claim ${OIDC_CLAIMS} : echo ${BK_TOKEN}" \
    "redactor add --format json : cat >/dev/null; echo 'fatal: failed to connect to the Job API' >&2; exit 1"
  stub curl \
    "$(curl_answer "${PORT_URL_FOR_TESTS}/oauth/token" 200 "$(exchange_answer "$PORT_TOKEN_VALUE" db-password)")" \
    "$(curl_answer "${PORT_URL_FOR_TESTS}/v1/credentials/db-password" 200 "$(secret_answer db-password "$DB_SECRET")")"

  run_hook environment

  [ "$status" -ne 0 ]
  assert_output_contains 'could not register secrets with the job log redactor (buildkite-agent redactor add failed); nothing was exported'
  unstub buildkite-agent
  unstub curl
  refute_job_env DB_PASSWORD
  assert_equal "$(state_dirs)" ''
}

@test "Port's deny reason is shown, the hook fails, nothing is exported or left behind" {
  plugin_config "{\"export-token\":true,\"secrets\":{\"DB\":\"db-prod\"},\"url\":\"${PORT_URL_FOR_TESTS}\"}"
  export BUILDKITE_PLUGIN_PORT_URL=$PORT_URL_FOR_TESTS
  export BUILDKITE_PLUGIN_PORT_EXPORT_TOKEN=true
  export BUILDKITE_PLUGIN_PORT_SECRETS_DB=db-prod
  stub buildkite-agent "oidc request-token --audience ${PORT_URL_FOR_TESTS} --claim ${OIDC_CLAIMS} : echo ${BK_TOKEN}"
  stub curl "$(curl_answer "${PORT_URL_FOR_TESTS}/oauth/token" 403 \
    '{"error":"access_denied","error_description":"Denied by policy prod-db-only-from-main: the production database password is only for builds of main"}')"

  run_hook environment

  [ "$status" -ne 0 ]
  assert_output_contains 'token exchange refused by Port (HTTP 403 access_denied: Denied by policy prod-db-only-from-main: the production database password is only for builds of main)'
  unstub buildkite-agent
  unstub curl
  refute_job_env PORT_TOKEN
  refute_job_env DB
  assert_equal "$(state_dirs)" ''
}

@test "a secret Port refuses after the exchange: its reason, the hook fails" {
  export BUILDKITE_PLUGIN_PORT_URL=$PORT_URL_FOR_TESTS
  export BUILDKITE_PLUGIN_PORT_SECRETS_DB=db-prod
  PORT_TOKEN_VALUE=$(fake_jwt "$JOB_ID" db-prod)
  stub buildkite-agent "oidc request-token --audience ${PORT_URL_FOR_TESTS} --claim ${OIDC_CLAIMS} : echo ${BK_TOKEN}"
  stub curl \
    "$(curl_answer "${PORT_URL_FOR_TESTS}/oauth/token" 200 "$(exchange_answer "$PORT_TOKEN_VALUE" db-prod)")" \
    "$(curl_answer "${PORT_URL_FOR_TESTS}/v1/credentials/db-prod" 403 '{"error":"access_denied","error_description":"Denied by policy freeze: deploys are frozen"}')"

  run_hook environment

  [ "$status" -ne 0 ]
  assert_output_contains 'credential "db-prod" refused by Port (HTTP 403 access_denied: Denied by policy freeze: deploys are frozen)'
  unstub buildkite-agent
  unstub curl
  refute_job_env DB
  assert_equal "$(state_dirs)" ''
}

@test "Port grants fewer scopes than asked: the hook fails rather than run without them" {
  export BUILDKITE_PLUGIN_PORT_URL=$PORT_URL_FOR_TESTS
  export BUILDKITE_PLUGIN_PORT_EXPORT_TOKEN=true
  export BUILDKITE_PLUGIN_PORT_SCOPES_0=deploy-token
  export BUILDKITE_PLUGIN_PORT_SCOPES_1=release-token
  stub buildkite-agent "oidc request-token --audience ${PORT_URL_FOR_TESTS} --claim ${OIDC_CLAIMS} : echo ${BK_TOKEN}"
  stub curl "$(curl_answer "${PORT_URL_FOR_TESTS}/oauth/token" 200 "$(exchange_answer "$(fake_jwt "$JOB_ID" deploy-token)" deploy-token)")"

  run_hook environment

  [ "$status" -ne 0 ]
  assert_output_contains 'token exchange: Port did not grant release-token'
  unstub buildkite-agent
  unstub curl
  refute_job_env PORT_TOKEN
}

@test "Port unreachable: the URL and curl's reason, the hook fails" {
  export BUILDKITE_PLUGIN_PORT_URL=http://127.0.0.1:9
  export BUILDKITE_PLUGIN_PORT_EXPORT_TOKEN=true
  stub buildkite-agent "oidc request-token --audience http://127.0.0.1:9 --claim ${OIDC_CLAIMS} : echo ${BK_TOKEN}"
  stub curl "* -- http://127.0.0.1:9/oauth/token : cat >/dev/null; echo 'curl: (7) Failed to connect to 127.0.0.1 port 9: Connection refused' >&2; exit 7"

  run_hook environment

  [ "$status" -ne 0 ]
  assert_output_contains 'cannot reach Port at http://127.0.0.1:9/oauth/token (curl exit 7: curl: (7) Failed to connect to 127.0.0.1 port 9: Connection refused)'
  unstub buildkite-agent
  unstub curl
  refute_job_env PORT_TOKEN
  assert_equal "$(state_dirs)" ''
}

@test "the agent cannot give a Buildkite token: says so, Port is not called" {
  export BUILDKITE_PLUGIN_PORT_URL=$PORT_URL_FOR_TESTS
  export BUILDKITE_PLUGIN_PORT_AUDIENCE=https://port.acme.internal
  export BUILDKITE_PLUGIN_PORT_EXPORT_TOKEN=true
  stub buildkite-agent "oidc request-token --audience https://port.acme.internal --claim ${OIDC_CLAIMS} : echo 'fatal: failed to get OIDC token: 403' >&2; exit 1"
  stub curl

  run_hook environment

  [ "$status" -ne 0 ]
  assert_output_contains 'could not get a Buildkite OIDC token for audience "https://port.acme.internal"'
  unstub buildkite-agent
  unstub curl
}

@test "curl missing on the agent: names it; nothing is asked of the agent" {
  export BUILDKITE_PLUGIN_PORT_URL=$PORT_URL_FOR_TESTS
  export BUILDKITE_PLUGIN_PORT_EXPORT_TOKEN=true
  stub buildkite-agent

  PATH=$(path_without curl) run_hook environment

  [ "$status" -ne 0 ]
  assert_output_contains "missing on this agent's PATH: curl (the plugin needs buildkite-agent, curl and jq)"
  unstub buildkite-agent
  assert_equal "$(state_dirs)" ''
}

@test "jq missing on the agent: names it" {
  export BUILDKITE_PLUGIN_PORT_URL=$PORT_URL_FOR_TESTS
  export BUILDKITE_PLUGIN_PORT_EXPORT_TOKEN=true
  stub buildkite-agent
  stub curl

  PATH=$(path_without jq) run_hook environment

  [ "$status" -ne 0 ]
  assert_output_contains "missing on this agent's PATH: jq (the plugin needs buildkite-agent, curl and jq)"
  unstub buildkite-agent
  unstub curl
}

@test "buildkite-agent, curl and jq all missing: names all three" {
  export BUILDKITE_PLUGIN_PORT_URL=$PORT_URL_FOR_TESTS
  export BUILDKITE_PLUGIN_PORT_EXPORT_TOKEN=true

  PATH=$(path_without jq curl buildkite-agent) run_hook environment

  [ "$status" -ne 0 ]
  assert_output_contains "missing on this agent's PATH: buildkite-agent curl jq"
}

@test "a jq that fails while reading the configuration: the hook fails closed before any token is asked for" {
  plugin_config "{\"export-token\":true,\"url\":\"${PORT_URL_FOR_TESTS}\"}"
  export BUILDKITE_PLUGIN_PORT_URL=$PORT_URL_FOR_TESTS
  export BUILDKITE_PLUGIN_PORT_EXPORT_TOKEN=true
  stub buildkite-agent
  stub curl
  stub jq "* : cat >/dev/null; echo 'jq: error: cannot allocate memory' >&2; exit 5"

  run_hook environment

  [ "$status" -ne 0 ]
  assert_output_contains 'jq could not read BUILDKITE_PLUGIN_CONFIGURATION as JSON'
  unstub jq
  unstub buildkite-agent
  unstub curl
  assert_equal "$(state_dirs)" ''
}

@test "a Port answer that is not JSON: the hook fails without exporting" {
  export BUILDKITE_PLUGIN_PORT_URL=$PORT_URL_FOR_TESTS
  export BUILDKITE_PLUGIN_PORT_EXPORT_TOKEN=true
  stub buildkite-agent "oidc request-token --audience ${PORT_URL_FOR_TESTS} --claim ${OIDC_CLAIMS} : echo ${BK_TOKEN}"
  stub curl "$(curl_answer "${PORT_URL_FOR_TESTS}/oauth/token" 200 '<html>captive portal</html>')"

  run_hook environment

  [ "$status" -ne 0 ]
  assert_output_contains 'token exchange: Port answered 200 without a usable access_token'
  unstub buildkite-agent
  unstub curl
  refute_job_env PORT_TOKEN
}
