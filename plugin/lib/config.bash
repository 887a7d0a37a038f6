# shellcheck shell=bash
# Reads the step's plugin options. The agent turns each option into
# BUILDKITE_PLUGIN_<NAME>_<OPTION> (upper-cased, - → _), lists into _0, _1, … and maps
# into _<KEY>, and puts the whole configuration as JSON in BUILDKITE_PLUGIN_CONFIGURATION
# (https://buildkite.com/docs/pipelines/integrations/plugins/writing; buildkite/agent
# agent/plugin/plugin.go). Values are read from the
# option variables; the JSON, when present, is used to refuse unknown options and wrong
# types, since the agent's own schema check is off by default.
#
# Sets: PORT_URL PORT_AUDIENCE PORT_EXPORT_TOKEN PORT_AWS_PROFILE PORT_AWS_REGION
#       PORT_SCOPES (array) PORT_SECRET_VARS / PORT_SECRET_NAMES (parallel arrays)

readonly PORT_KNOWN_OPTIONS='["url","audience","scopes","export-token","aws-profile","aws-region","secrets"]'
readonly PORT_ENV_NAME_RE='^[A-Z][A-Z0-9]*(_[A-Z0-9]+)*$'

# The option prefix: BUILDKITE_PLUGIN_PORT_ for a repository named port-buildkite-plugin,
# or whatever name the agent gave the plugin (a fork under another name still works).
port_option_prefix() {
  local name=${BUILDKITE_PLUGIN_NAME:-PORT}
  [[ "$name" =~ ^[A-Z0-9_]+$ ]] || name=PORT
  printf 'BUILDKITE_PLUGIN_%s_' "$name"
}

# Variables a secret may not be written to: the agent's own, the shell's, the loader's,
# and the ones this plugin sets.
port_reserved_env_name() {
  case "$1" in
    BUILDKITE | BUILDKITE_* | BASH | BASH_* | LD_* | DYLD_* | PATH | HOME | IFS | ENV | SHELLOPTS | BASHOPTS | PS4 | CDPATH | \
      PORT_TOKEN | PORT_PLUGIN_STATE_DIR | AWS_CONFIG_FILE | AWS_PROFILE | AWS_SHARED_CREDENTIALS_FILE) return 0 ;;
  esac
  return 1
}

port_check_configuration_json() {
  local json=${BUILDKITE_PLUGIN_CONFIGURATION-}
  [[ -n "$json" ]] || return 0
  local problems
  problems=$(jq -r --argjson known "$PORT_KNOWN_OPTIONS" --arg env_re "$PORT_ENV_NAME_RE" '
    if type != "object" then "the plugin configuration is not a map of options"
    else
      ((keys - $known)[] | "unknown option \"\(.)\" (options: \($known | join(", ")))"),
      (if has("scopes") and (.scopes | type) != "array" then "option \"scopes\" must be a list of credential names" else empty end),
      (if has("secrets") and (.secrets | type) != "object" then "option \"secrets\" must be a map of ENV_VAR: credential-name" else empty end),
      (if has("secrets") and (.secrets | type) == "object" then
         (.secrets | to_entries[] | select((.value | type) != "string") | "secret \"\(.key)\" must name one credential (a string)"),
         # The agent upper-cases option names (npm-token would arrive as NPM_TOKEN):
         # refuse a name that is not the variable the step would get.
         (.secrets | keys[] | select(test($env_re) | not)
           | "secrets: \"\(.)\" is not an environment variable name (upper-case letters, digits and single _, e.g. NPM_TOKEN)")
       else empty end),
      (if has("export-token") and (.["export-token"] | type) != "boolean" then "option \"export-token\" must be true or false" else empty end),
      ((["url", "audience", "aws-profile", "aws-region"][]) as $k | select(has($k) and (.[$k] | type) != "string") | "option \"\($k)\" must be a string")
    end' <<<"$json" 2>/dev/null) || {
    port_error 'jq could not read BUILDKITE_PLUGIN_CONFIGURATION as JSON'
    return 1
  }
  if [[ -n "$problems" ]]; then
    local line
    while IFS= read -r line; do port_error "plugin configuration: ${line}"; done <<<"$problems"
    return 1
  fi
}

port_add_scope() {
  local scope=$1 existing
  if [[ ! "$scope" =~ $PORT_CREDENTIAL_NAME_RE ]]; then
    port_error "\"${scope}\" is not a credential name (lower-case letters, digits, - and _)"
    return 1
  fi
  for existing in "${PORT_SCOPES[@]}"; do
    [[ "$existing" == "$scope" ]] && return 0
  done
  PORT_SCOPES+=("$scope")
}

port_read_config() {
  local prefix var i
  prefix=$(port_option_prefix)
  port_check_configuration_json || return 1

  var="${prefix}URL"
  PORT_URL=$(port_check_url "${!var-}") || return 1
  var="${prefix}AUDIENCE"
  PORT_AUDIENCE=${!var-}
  [[ -n "$PORT_AUDIENCE" ]] || PORT_AUDIENCE=$PORT_URL
  if [[ "$PORT_AUDIENCE" =~ [[:cntrl:]] ]]; then
    port_error 'the plugin option "audience" contains control characters'
    return 1
  fi

  var="${prefix}EXPORT_TOKEN"
  case "${!var-false}" in
    true) PORT_EXPORT_TOKEN=true ;;
    false) PORT_EXPORT_TOKEN=false ;;
    *) port_error "the plugin option \"export-token\" must be true or false, not \"${!var}\""; return 1 ;;
  esac

  PORT_SCOPES=()
  var="${prefix}SCOPES"
  if [[ -n "${!var+set}" ]]; then
    port_error 'the plugin option "scopes" must be a list, e.g. scopes: [deploy-token]'
    return 1
  fi
  i=0
  while var="${prefix}SCOPES_${i}" && [[ -n "${!var+set}" ]]; do
    port_add_scope "${!var}" || return 1
    i=$((i + 1))
  done

  var="${prefix}AWS_PROFILE"
  PORT_AWS_PROFILE=${!var-}
  if [[ -n "$PORT_AWS_PROFILE" ]]; then
    port_add_scope "$PORT_AWS_PROFILE" || return 1
  fi
  var="${prefix}AWS_REGION"
  PORT_AWS_REGION=${!var-}
  if [[ -n "$PORT_AWS_REGION" ]]; then
    if [[ -z "$PORT_AWS_PROFILE" ]]; then
      port_error 'the plugin option "aws-region" needs "aws-profile"'
      return 1
    fi
    if [[ ! "$PORT_AWS_REGION" =~ ^[a-z]{2}(-[a-z]+)+-[0-9]+$ ]]; then
      port_error "the plugin option \"aws-region\" is not an AWS region (e.g. us-east-1): ${PORT_AWS_REGION}"
      return 1
    fi
  fi

  PORT_SECRET_VARS=()
  PORT_SECRET_NAMES=()
  local env_name
  while IFS= read -r var; do
    [[ -n "$var" ]] || continue
    env_name=${var#"${prefix}SECRETS_"}
    if [[ ! "$env_name" =~ $PORT_ENV_NAME_RE ]]; then
      port_error "secrets: \"${env_name}\" is not an environment variable name (upper-case letters, digits and single _)"
      return 1
    fi
    if port_reserved_env_name "$env_name"; then
      port_error "secrets: \"${env_name}\" is reserved; choose another variable name"
      return 1
    fi
    port_add_scope "${!var}" || return 1
    PORT_SECRET_VARS+=("$env_name")
    PORT_SECRET_NAMES+=("${!var}")
  done < <(compgen -A variable "${prefix}SECRETS_" | LC_ALL=C sort)
  var="${prefix}SECRETS"
  if [[ -n "${!var+set}" ]]; then
    port_error 'the plugin option "secrets" must be a map, e.g. secrets: { NPM_TOKEN: npm-publish }'
    return 1
  fi

  if [[ "$PORT_EXPORT_TOKEN" != true && -z "$PORT_AWS_PROFILE" && ${#PORT_SECRET_VARS[@]} -eq 0 ]]; then
    port_error 'nothing to do: set export-token: true, aws-profile or secrets'
    return 1
  fi
}
