#!/usr/bin/env bash
# The work of hooks/environment, run as its own bash process so that strict mode holds
# and nothing leaks into the job's shell:
#   environment.bash STATE_DIR
# Requests the job's Buildkite OIDC token for Port's audience, exchanges it at Port
# (RFC 8693), fetches the secrets the step named, registers every secret and the Port
# token with the log redactor, writes STATE_DIR/port-token (0600), STATE_DIR/url,
# STATE_DIR/audience (to renew the token, lib/token.bash) and, when asked,
# STATE_DIR/aws-config; then prints NAME=VALUE records, NUL-terminated, for the hook to
# export. Messages go to stderr; any failure exits non-zero with the reason and prints
# no record.
set -euo pipefail
# Never trace: a job environment exporting SHELLOPTS with xtrace would print the Port
# token and secret values to the job log before the redactor knows them.
set +x

PORT_PLUGIN_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=plugin/lib/port.bash
. "${PORT_PLUGIN_ROOT}/lib/port.bash"
# shellcheck source=plugin/lib/token.bash
. "${PORT_PLUGIN_ROOT}/lib/token.bash"
# shellcheck source=plugin/lib/config.bash
. "${PORT_PLUGIN_ROOT}/lib/config.bash"

port_require_commands() {
  local cmd missing=()
  for cmd in buildkite-agent curl jq; do
    command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
  done
  if [[ ${#missing[@]} -gt 0 ]]; then
    port_error "missing on this agent's PATH: ${missing[*]} (the plugin needs buildkite-agent, curl and jq)"
    return 1
  fi
}

# A JSON string literal of stdin's bytes, without the value passing through argv.
port_json_string() {
  jq -Rs .
}

# Sets PORT_SECRET_VALUES[i] for PORT_SECRET_NAMES[i].
port_fetch_secrets() {
  local i name value
  PORT_SECRET_VALUES=()
  for i in "${!PORT_SECRET_NAMES[@]}"; do
    name=${PORT_SECRET_NAMES[$i]}
    port_fetch_credential "$PORT_URL" "$PORT_TOKEN_VALUE" "$name" || return 1
    if ! jq -e --arg name "$name" '.name == $name and (.value | type) == "string" and (.value | length) > 0' <<<"$PORT_HTTP_BODY" >/dev/null; then
      port_error "credential \"${name}\" is not a secret with a value (expected {\"name\", \"value\", \"expires_at\"}); is it of type secret?"
      return 1
    fi
    # The x keeps trailing newlines of the value, which $(…) would strip.
    value=$(jq -j '.value' <<<"$PORT_HTTP_BODY"; printf x)
    PORT_SECRET_VALUES[$i]=${value%x}
  done
}

port_register_redactions() {
  local json i
  json="{\"port_token\":$(printf '%s' "$PORT_TOKEN_VALUE" | port_json_string)"
  for i in "${!PORT_SECRET_VALUES[@]}"; do
    json+=",\"secret_${i}\":$(printf '%s' "${PORT_SECRET_VALUES[$i]}" | port_json_string)"
  done
  json+='}'
  port_redact_json "$json"
}

# An AWS shared config file whose profile runs bin/port-credential-process
# (AWS SDKs and CLI "Sourcing credentials with an external process").
port_write_aws_config() {
  local state=$1 file="${1}/aws-config" tool="${PORT_PLUGIN_ROOT}/bin/port-credential-process" p
  for p in "$tool" "$state"; do
    # The command line is split by a shell (AWS SDK for JavaScript) or shlex (botocore):
    # inside double quotes these characters would be interpreted.
    if [[ "$p" =~ [\"\$\`\\[:cntrl:]] ]]; then
      port_error "cannot write an AWS profile: the path ${p} has characters a credential_process line cannot quote"
      return 1
    fi
  done
  {
    printf '# Written by the Port plugin for job %s; removed by its pre-exit hook.\n' "${BUILDKITE_JOB_ID:-?}"
    printf '[profile %s]\n' "$PORT_AWS_PROFILE"
    printf 'credential_process = "%s" --format aws --url "%s" --token-file "%s" %s\n' \
      "$tool" "$PORT_URL" "${state}/port-token" "$PORT_AWS_PROFILE"
    [[ -z "$PORT_AWS_REGION" ]] || printf 'region = %s\n' "$PORT_AWS_REGION"
  } >"$file"
}

port_emit() {
  printf '%s=%s\0' "$1" "$2"
}

main() {
  local state=${1:?usage: environment.bash STATE_DIR}
  umask 077
  port_require_commands
  port_read_config

  port_info "~~~ :closed_lock_with_key: Port: exchanging this job's Buildkite token at ${PORT_URL}"
  port_detect_host_key
  [[ -z "$PORT_PLUGIN_DPOP_KEY" ]] || port_info "Port: this agent host has a host key (${PORT_PLUGIN_DPOP_KEY}); exchanging with a DPoP proof of it through $(command -v port)"
  port_request_buildkite_token "$PORT_AUDIENCE"
  port_exchange "$PORT_URL" "$PORT_BUILDKITE_TOKEN" "${PORT_SCOPES[@]}"
  PORT_BUILDKITE_TOKEN=''
  printf '%s' "$PORT_TOKEN_VALUE" >"${state}/port-token"
  printf '%s' "$PORT_URL" >"${state}/url"
  # What lib/token.bash needs to renew the token in this job once it expires.
  printf '%s' "$PORT_AUDIENCE" >"${state}/audience"
  # A token bound to the host key: every later use (secrets, the AWS profile, renewal) proves the key.
  if [[ "$PORT_TOKEN_BOUND" == true ]]; then
    printf '%s' "$PORT_PLUGIN_DPOP_KEY" >"${state}/dpop-key"
    port_info 'Port bound the token to this host (DPoP): it is useless without the host key'
  fi

  port_fetch_secrets
  port_register_redactions

  local granted="${PORT_SCOPES[*]}"
  port_info "Port granted: ${granted:-(no grants)}"
  if [[ "$PORT_EXPORT_TOKEN" == true ]]; then
    port_emit PORT_TOKEN "$PORT_TOKEN_VALUE"
    port_info 'Exported PORT_TOKEN'
    [[ "$PORT_TOKEN_BOUND" != true ]] || port_info 'PORT_TOKEN is bound to this host (DPoP): send it with a proof of the host key (port creds --dpop-key, or port agent proxy for the relay), not as a Bearer token'
  fi
  local i
  for i in "${!PORT_SECRET_VARS[@]}"; do
    port_emit "${PORT_SECRET_VARS[$i]}" "${PORT_SECRET_VALUES[$i]}"
    port_info "Exported ${PORT_SECRET_VARS[$i]} (secret ${PORT_SECRET_NAMES[$i]})"
  done
  if [[ -n "$PORT_AWS_PROFILE" ]]; then
    port_write_aws_config "$state"
    port_emit AWS_CONFIG_FILE "${state}/aws-config"
    port_emit AWS_PROFILE "$PORT_AWS_PROFILE"
    port_info "Exported AWS_PROFILE=${PORT_AWS_PROFILE} (AWS_CONFIG_FILE=${state}/aws-config)"
    if [[ -n "${AWS_ACCESS_KEY_ID-}" || -n "${AWS_SESSION_TOKEN-}" ]]; then
      port_warn 'AWS_ACCESS_KEY_ID or AWS_SESSION_TOKEN is set in this job; AWS SDKs prefer them over AWS_PROFILE. Unset them to use the Port profile.'
    fi
  fi
}

main "$@"
