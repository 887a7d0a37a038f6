# shellcheck shell=bash
# Shared by the plugin's hooks and bin/port-credential-process: messages, input checks
# and one HTTP call to Port. Sourced by scripts that run `set -euo pipefail`; every
# function checks its own failures and returns non-zero with a reason on stderr.
#
# Secrets (the Buildkite token, the Port token, credential values) never reach a
# process's argv or a log line: request bodies go to curl on stdin and the bearer
# token in a curl config read from a pipe (curl(1) --config), and response bodies are
# only kept in variables.

# Credential names as port.yaml allows them (src/config/schema.ts, `credentials`).
readonly PORT_CREDENTIAL_NAME_RE='^[a-z0-9][a-z0-9_-]*$'
# JWT / Port token characters (base64url segments and dots); anything else is refused
# before it is put into a header.
readonly PORT_TOKEN_RE='^[A-Za-z0-9._~+/=-]+$'

port_error() {
  # `^^^ +++` opens the collapsed log section so the reason is what the reader sees
  # (Buildkite "Managing log output").
  printf '^^^ +++\n' >&2
  printf '+++ :no_entry: Port: %s\n' "$*" >&2
}

port_warn() {
  printf '+++ :warning: Port: %s\n' "$*" >&2
}

port_info() {
  printf '%s\n' "$*" >&2
}

# Port's URL without a trailing slash, or an error. https is required except on the
# loopback interface: the Buildkite token and the Port token are bearer credentials.
port_check_url() {
  local url=${1%/}
  if [[ -z "$url" ]]; then
    port_error 'the plugin option "url" is required (e.g. url: https://port.example.com)'
    return 1
  fi
  if [[ "$url" =~ [[:space:][:cntrl:]\"\'\`\$\\@?#] ]]; then
    port_error "the plugin option \"url\" is not a plain URL (no spaces, quotes, \\, \$, @, ? or #): ${url}"
    return 1
  fi
  if [[ "$url" =~ ^https://[A-Za-z0-9.-]+(:[0-9]+)?(/.*)?$ ]] \
    || [[ "$url" =~ ^http://(127\.0\.0\.1|localhost|\[::1\])(:[0-9]+)?(/.*)?$ ]]; then
    printf '%s' "$url"
    return 0
  fi
  port_error "the plugin option \"url\" must be an https:// URL (http:// only for 127.0.0.1, localhost or [::1]): ${url}"
  return 1
}

# A response's `error` and `error_description` (RFC 6749 §5.2 shape), control
# characters removed and the description shortened, or "" when the body is not that.
port_describe_error_body() {
  local body=$1
  jq -r '
    def clean: tostring | gsub("[[:cntrl:]]"; " ") | .[0:400];
    if type == "object" and (.error | type) == "string" then
      (.error | clean) + (if (.error_description | type) == "string" then ": " + (.error_description | clean) else "" end)
    else empty end' <<<"$body" 2>/dev/null || true
}

# port_http METHOD URL BEARER CONTENT_TYPE
#   Sends stdin as the body (nothing when CONTENT_TYPE is empty) and sets PORT_HTTP_STATUS
#   and PORT_HTTP_BODY. BEARER may be empty. Returns 1, with a reason, when Port could not
#   be reached; any HTTP status is returned as 0 for the caller to judge.
port_http() {
  local method=$1 url=$2 bearer=$3 content_type=$4
  local errfile out rc=0
  PORT_HTTP_STATUS=''
  PORT_HTTP_BODY=''
  if [[ -n "$bearer" && ! "$bearer" =~ $PORT_TOKEN_RE ]]; then
    port_error 'the Port token has unexpected characters; refusing to send it'
    return 1
  fi
  errfile=$(mktemp) || { port_error 'cannot create a temporary file'; return 1; }
  local -a args=(
    --silent --show-error
    --proto '=http,https'     # never another protocol, and no redirects are followed
    --connect-timeout 10 --max-time 60
    --request "$method"
    --write-out '\n%{http_code}'
    --header 'accept: application/json'
  )
  if [[ -n "$content_type" ]]; then
    args+=(--header "content-type: ${content_type}" --data-binary @-)
  fi
  # The Authorization header comes from a config "file" that is a pipe, so the token
  # is in no argv (ps) and on no disk.
  out=$(curl "${args[@]}" --config <(
    if [[ -n "$bearer" ]]; then printf 'header = "Authorization: Bearer %s"\n' "$bearer"; fi
  ) -- "$url" 2>"$errfile") || rc=$?
  if [[ $rc -ne 0 ]]; then
    local why
    why=$(tr -d '\000-\010\013-\037' <"$errfile" | head -c 300)
    rm -f "$errfile"
    port_error "cannot reach Port at ${url} (curl exit ${rc}: ${why:-no detail})"
    return 1
  fi
  rm -f "$errfile"
  PORT_HTTP_STATUS=${out##*$'\n'}
  PORT_HTTP_BODY=${out%$'\n'*}
  [[ "$out" == *$'\n'* ]] || PORT_HTTP_BODY=''
  return 0
}

# The reason a non-2xx answer gives, for messages: "HTTP 403 access_denied: …".
port_http_failure() {
  local what=$1 described
  described=$(port_describe_error_body "$PORT_HTTP_BODY")
  if [[ -n "$described" ]]; then
    printf '%s refused by Port (HTTP %s %s)' "$what" "$PORT_HTTP_STATUS" "$described"
  else
    printf '%s failed: Port answered HTTP %s without an error body' "$what" "$PORT_HTTP_STATUS"
  fi
}

# port_fetch_credential URL BEARER NAME: POST /v1/credentials/NAME; on 200 with a JSON
# object sets PORT_HTTP_BODY to it and returns 0; otherwise a reason and 1.
port_fetch_credential() {
  port_request_credential "$@" || return 1
  port_check_credential_answer "$3"
}

# port_request_credential URL BEARER NAME: POST /v1/credentials/NAME and sets
# PORT_HTTP_STATUS / PORT_HTTP_BODY whatever the status; 1 only when NAME is not a
# credential name or Port could not be reached. A token bound to the host key
# (PORT_TOKEN_BOUND=true) goes through `port creds`, which adds the DPoP proof.
port_request_credential() {
  local url=$1 bearer=$2 name=$3
  if [[ ! "$name" =~ $PORT_CREDENTIAL_NAME_RE ]]; then
    port_error "\"${name}\" is not a credential name (lower-case letters, digits, - and _)"
    return 1
  fi
  if [[ "${PORT_TOKEN_BOUND-false}" == true ]]; then
    port_cli_credential "$url" "$bearer" "$name"
    return
  fi
  port_http POST "${url}/v1/credentials/${name}" "$bearer" 'application/json' <<<'{}'
}

# port_check_credential_answer NAME: 0 when the last answer was 200 with a JSON object;
# otherwise Port's reason and 1.
port_check_credential_answer() {
  local name=$1
  if [[ "$PORT_HTTP_STATUS" != 200 ]]; then
    port_error "$(port_http_failure "credential \"${name}\"")"
    return 1
  fi
  if ! jq -e 'type == "object"' <<<"$PORT_HTTP_BODY" >/dev/null 2>&1; then
    port_error "credential \"${name}\": Port answered 200 with a body that is not a JSON object"
    return 1
  fi
  return 0
}

# Registers every string value of a flat JSON object with the job's log redactor
# (`buildkite-agent redactor add --format json`, values on stdin and taken exactly,
# untrimmed; https://buildkite.com/docs/agent/v3/cli-redactor), before any of them is
# exported or printed.
port_redact_json() {
  local json=$1
  if ! buildkite-agent redactor add --format json <<<"$json" >/dev/null; then
    port_error 'could not register secrets with the job log redactor (buildkite-agent redactor add failed); nothing was exported'
    return 1
  fi
}

# ---- Host-bound tokens and agent attestation ------------------------------------------
# A pool can require agents to attest (`port agent attest` on the agent host) and bind the
# Port tokens of its jobs to the host's key (DPoP, RFC 9449). Proofs need that key, so
# then the work goes through Port's own CLI (`port`), which holds no state of its own:
# the key stays in its file, readable by the agent's user only.

readonly PORT_ATTESTATION_DOCS='docs/guides/agent-attestation.md in Port'"'"'s documentation (https://unpkg.com/buildkite-port/docs/guides/agent-attestation.md)'

# port_host_key_path: the host key `port agent attest` keeps: $PORT_HOST_KEY, else
# ${XDG_STATE_HOME:-$HOME/.local/state}/port/host-key.jwk (a relative XDG_STATE_HOME is
# ignored, as the XDG Base Directory Specification says).
port_host_key_path() {
  if [[ -n "${PORT_HOST_KEY-}" ]]; then
    printf '%s' "$PORT_HOST_KEY"
    return 0
  fi
  local state=${XDG_STATE_HOME-}
  if [[ "$state" != /* ]]; then
    [[ -n "${HOME-}" ]] || return 1
    state="${HOME}/.local/state"
  fi
  printf '%s/port/host-key.jwk' "$state"
}

# port_detect_host_key: sets PORT_PLUGIN_DPOP_KEY to the host key when `port` is on PATH,
# the key exists and `port agent attest` marked it host-bound (KEY.host-bound: Port said
# the agent's pool binds tokens to it), else ''. With it, the exchange carries a proof of
# the key and Port binds the token to it; elsewhere the token stays a Bearer token, which
# git, npm and curl can send.
port_detect_host_key() {
  local key
  PORT_PLUGIN_DPOP_KEY=''
  command -v port >/dev/null 2>&1 || return 0
  key=$(port_host_key_path) || return 0
  [[ -e "$key" || -L "$key" ]] || return 0
  [[ -f "${key}.host-bound" ]] || return 0
  PORT_PLUGIN_DPOP_KEY=$key
}

# port_bound_key TOKEN_FILE: a token file the environment hook wrote for a token bound to
# the host key has the key's path beside it (dpop-key). Sets PORT_PLUGIN_DPOP_KEY and
# PORT_TOKEN_BOUND=true then; 1 when that file is not this user's or `port` is missing.
port_bound_key() {
  local file
  file="$(dirname -- "$1")/dpop-key"
  PORT_TOKEN_BOUND=false
  [[ -e "$file" || -L "$file" ]] || return 0
  if [[ ! -f "$file" || -L "$file" || ! -O "$file" ]]; then
    port_error "${file} is not a regular file of this user; cannot tell which host key the token is bound to"
    return 1
  fi
  PORT_PLUGIN_DPOP_KEY=$(<"$file")
  if [[ -z "$PORT_PLUGIN_DPOP_KEY" || "$PORT_PLUGIN_DPOP_KEY" =~ [[:cntrl:]] ]]; then
    port_error "${file} does not name a host key"
    return 1
  fi
  if ! command -v port >/dev/null 2>&1; then
    port_error "the Port token is bound to this host's key (DPoP) and Port's CLI (port) is not on PATH to make the proofs"
    return 1
  fi
  PORT_TOKEN_BOUND=true
}

# port_cli_outcome WHAT RC STDOUT ERRFILE: a `port` command's outcome as port_http
# reports one: 0 with PORT_HTTP_STATUS/PORT_HTTP_BODY (200 and its JSON on success; on a
# refusal, Port's status and {error, error_description} from the line the CLI prints,
# "… refused (STATUS ERROR): DESCRIPTION"); 1 with the reason when nothing was answered.
port_cli_outcome() {
  local what=$1 rc=$2 out=$3 errfile=$4 line
  PORT_HTTP_STATUS='' PORT_HTTP_BODY=''
  line=$(tr -d '\000-\010\013-\037' <"$errfile" | grep -E '^port: ' | tail -n 1 || true)
  rm -f -- "$errfile"
  if [[ "$rc" -eq 0 ]]; then
    PORT_HTTP_STATUS=200
    PORT_HTTP_BODY=$out
    return 0
  fi
  if [[ "$line" =~ refused\ \(([0-9]{3})\ ([A-Za-z0-9_]+)\):\ (.*)$ ]]; then
    PORT_HTTP_STATUS=${BASH_REMATCH[1]}
    PORT_HTTP_BODY=$(jq -cn --arg e "${BASH_REMATCH[2]}" --arg d "${BASH_REMATCH[3]}" '{error: $e, error_description: $d}')
    return 0
  fi
  port_error "${what} failed: port exited ${rc}: ${line:-no detail}"
  return 1
}

# port_cli_credential URL BEARER NAME: POST /v1/credentials/NAME through `port creds` with
# the token bound to the host key (Authorization: DPoP and a fresh proof with its hash). The
# token reaches `port` in its environment (readable by this user only), never its argv.
port_cli_credential() {
  local url=$1 bearer=$2 name=$3 errfile out rc=0
  errfile=$(mktemp) || { port_error 'cannot create a temporary file'; return 1; }
  out=$(PORT_TOKEN="$bearer" env -u PORT_DPOP_KEY port creds "$name" --url "$url" --dpop-key "$PORT_PLUGIN_DPOP_KEY" </dev/null 2>"$errfile") || rc=$?
  port_cli_outcome "credential \"${name}\"" "$rc" "$out" "$errfile"
}

# port_refusal_hint: after a refused exchange, what to do when the refusal is about the
# agent (the pool's attestation rules): Port's description names `port agent attest` for an
# agent that has not attested, and "host-bound" for a token that must be bound to the host key.
port_refusal_hint() {
  local description
  [[ "$PORT_HTTP_STATUS" == 403 ]] || return 0
  description=$(jq -r 'if type == "object" and .error == "access_denied" then (.error_description // "" | tostring) else "" end' <<<"$PORT_HTTP_BODY" 2>/dev/null || true)
  if [[ "$description" == *'port agent attest'* ]]; then
    port_error "this agent has not attested for its pool. On the agent host, run \`port agent attest --url <Port's URL>\` from the agent's environment hook (or its pre-bootstrap hook) so it runs before every job; see ${PORT_ATTESTATION_DOCS}"
  elif [[ "$description" == *'host-bound'* ]]; then
    port_error "this pool binds Port tokens to the agent host: the plugin makes the exchange with a DPoP proof when Port's CLI (port) is on the agent's PATH and the host key \`port agent attest\` created exists ($(port_host_key_path 2>/dev/null || printf 'PORT_HOST_KEY')); see ${PORT_ATTESTATION_DOCS}"
  fi
}
