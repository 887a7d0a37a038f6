# shellcheck shell=bash
# The job's Port token: getting one (a Buildkite OIDC token exchanged at Port, RFC 8693),
# reading its claims, and renewing the token file before or when it expires. Shared by
# lib/environment.bash, lib/pre-exit.bash and bin/port-credential-process; needs
# lib/port.bash. Every function checks its own failures and returns non-zero with a
# reason on stderr; no token reaches an argv (jq and curl read them on stdin).
#
# Renewal: a Port token lives `issuer.token_ttl` (15 min by default), a job may run for
# hours. Inside the job (the agent's env and `buildkite-agent` at hand) an expiring token
# in a token file is replaced by a fresh exchange for the same scopes. Port itself
# refuses the exchange for a job that was revoked or has finished (its pre-exit hook
# ran), so renewal never outlives the job; a token Port refuses *as revoked* is not
# even tried (port_refused_as_revoked).

# The optional claims Port builds pools and policy on: Buildkite adds them to the token only
# when asked with --claim (https://buildkite.com/docs/agent/v3/cli-oidc).
readonly PORT_OIDC_CLAIMS='organization_id,pipeline_id,cluster_id,cluster_name,queue_id,queue_key'
# Seconds to wait for another process renewing the same token file: longer than one
# renewal (curl --max-time 60 plus the agent's token request).
readonly PORT_LOCK_TIMEOUT=90

port_now() {
  printf '%(%s)T' -1
}

# port_request_buildkite_token AUDIENCE: sets PORT_BUILDKITE_TOKEN to a fresh Buildkite
# OIDC token of this job (`buildkite-agent oidc request-token`,
# https://buildkite.com/docs/agent/v3/cli-oidc; the agent registers it with the log
# redactor itself).
port_request_buildkite_token() {
  local audience=$1
  PORT_BUILDKITE_TOKEN=''
  if ! PORT_BUILDKITE_TOKEN=$(buildkite-agent oidc request-token --audience "$audience" --claim "$PORT_OIDC_CLAIMS"); then
    PORT_BUILDKITE_TOKEN=''
    port_error "could not get a Buildkite OIDC token for audience \"${audience}\" (buildkite-agent oidc request-token failed; see above)"
    return 1
  fi
  if [[ ! "$PORT_BUILDKITE_TOKEN" =~ $PORT_TOKEN_RE ]]; then
    PORT_BUILDKITE_TOKEN=''
    port_error 'buildkite-agent oidc request-token printed something that is not a token'
    return 1
  fi
}

# port_exchange URL BUILDKITE_TOKEN [SCOPE…]: RFC 8693 §2.1 token exchange at URL/oauth/token.
# Sets PORT_TOKEN_VALUE, and PORT_TOKEN_BOUND=true when Port bound the token to the host
# key (PORT_PLUGIN_DPOP_KEY: then the exchange goes through `port token exchange
# --dpop-key`, which adds the proof; RFC 9449 §5). Scopes are credential names, checked by
# the caller.
port_exchange() {
  local url=$1 bk_token=$2 scope body granted s
  shift 2
  local -a missing=()
  PORT_TOKEN_VALUE='' PORT_TOKEN_BOUND=false
  scope="$*"
  if [[ -n "${PORT_PLUGIN_DPOP_KEY-}" ]]; then
    port_cli_exchange "$url" "$bk_token" "$scope" || return 1
  else
    body="grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange"
    body+="&subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Ajwt"
    # Credential names are [a-z0-9_-]: only the separating spaces need encoding.
    [[ -z "$scope" ]] || body+="&scope=${scope// /%20}"
    port_http POST "${url}/oauth/token" '' 'application/x-www-form-urlencoded' \
      < <(printf '%s&subject_token=%s' "$body" "$bk_token") || return 1
  fi
  if [[ "$PORT_HTTP_STATUS" != 200 ]]; then
    port_error "$(port_http_failure 'token exchange')"
    port_refusal_hint
    return 1
  fi
  PORT_TOKEN_VALUE=$(jq -r 'if type == "object" and (.access_token | type) == "string" then .access_token else "" end' <<<"$PORT_HTTP_BODY" 2>/dev/null || true)
  if [[ -z "$PORT_TOKEN_VALUE" || ! "$PORT_TOKEN_VALUE" =~ $PORT_TOKEN_RE ]]; then
    PORT_TOKEN_VALUE=''
    port_error 'token exchange: Port answered 200 without a usable access_token'
    return 1
  fi
  # Port's token endpoint grants every requested scope or refuses the exchange; check
  # anyway, so a step never runs believing it holds a grant it does not.
  granted=" $(jq -r '.scope // "" | tostring' <<<"$PORT_HTTP_BODY") "
  for s in "$@"; do
    [[ "$granted" == *" ${s} "* ]] || missing+=("$s")
  done
  if [[ ${#missing[@]} -gt 0 ]]; then
    PORT_TOKEN_VALUE=''
    port_error "token exchange: Port did not grant ${missing[*]}"
    return 1
  fi
  # RFC 9449 §5: a token bound to the proof's key comes back as token_type DPoP.
  if [[ -n "${PORT_PLUGIN_DPOP_KEY-}" ]] && jq -e '.token_type == "DPoP"' <<<"$PORT_HTTP_BODY" >/dev/null 2>&1; then
    PORT_TOKEN_BOUND=true
  fi
}

# port_cli_exchange URL BUILDKITE_TOKEN SCOPE: the exchange through `port token exchange
# --dpop-key` with the host key, the Buildkite token on its stdin (never argv). Sets
# PORT_HTTP_STATUS / PORT_HTTP_BODY as port_http does.
port_cli_exchange() {
  local url=$1 bk_token=$2 scope=$3 errfile out rc=0
  local -a args=(token exchange --url "$url" --stdin --json --dpop-key "$PORT_PLUGIN_DPOP_KEY")
  [[ -z "$scope" ]] || args+=(--scope "$scope")
  errfile=$(mktemp) || { port_error 'cannot create a temporary file'; return 1; }
  # The job's PORT_SCOPE and PORT_DPOP_KEY would otherwise stand in for what is not given.
  out=$(printf '%s' "$bk_token" | env -u PORT_SCOPE -u PORT_DPOP_KEY -u PORT_TOKEN port "${args[@]}" 2>"$errfile") || rc=$?
  port_cli_outcome 'token exchange' "$rc" "$out" "$errfile"
}

# port_token_claims TOKEN: prints the JWT's payload as compact JSON (RFC 7519 §7.2 step 7:
# base64url without padding). The signature is not checked: Port checks it; the claims
# only tell this job *when* to renew and *for what*.
port_token_claims() {
  jq -Rce 'split(".")
    | if length == 3 then .[1] else error("not a JWT") end
    | gsub("-"; "+") | gsub("_"; "/") | . + ("=" * ((4 - length % 4) % 4))
    | @base64d | fromjson
    | if type == "object" then . else error("not a claims object") end' <<<"$1" 2>/dev/null
}

# port_token_expiring TOKEN: 0 when the token's `exp` is past or within the renewal
# margin — 60 s, or a quarter of the token's lifetime when that is shorter, so a short
# `issuer.token_ttl` is not renewed on every use. 1 otherwise, or when it has no `exp`
# (then Port's answer decides). Sets PORT_TOKEN_EXP_TEXT (ISO 8601 UTC) for messages.
port_token_expiring() {
  local claims exp iat margin=60
  PORT_TOKEN_EXP_TEXT=''
  claims=$(port_token_claims "$1") || return 1
  exp=$(jq -r '.exp | if type == "number" then floor else "" end' <<<"$claims")
  iat=$(jq -r '.iat | if type == "number" then floor else "" end' <<<"$claims")
  [[ "$exp" =~ ^[0-9]{1,12}$ ]] || return 1
  PORT_TOKEN_EXP_TEXT=$(jq -r '.exp | floor | todate' <<<"$claims")
  if [[ "$iat" =~ ^[0-9]{1,12}$ ]] && ((exp > iat && (exp - iat) / 4 < margin)); then
    margin=$(((exp - iat) / 4))
  fi
  ((exp - $(port_now) <= margin))
}

# port_refused_as_revoked: 0 when the last answer (PORT_HTTP_BODY) refused the token
# because it was revoked — the job finished (pre-exit, job.finished) or an operator
# revoked it. Such a token is never renewed. Port says so in the description ("The Port
# token has been revoked.", src/broker/credentials/credential-service.ts); were that
# text to change, renewal would still fail closed: Port refuses to exchange a Buildkite
# token of a revoked job.
port_refused_as_revoked() {
  [[ "$PORT_HTTP_STATUS" == 401 ]] || return 1
  jq -e 'type == "object" and .error == "invalid_token" and ((.error_description // "") | tostring | test("revoked"; "i"))' \
    <<<"$PORT_HTTP_BODY" >/dev/null 2>&1
}

# port_refused_token: 0 when the last answer was 401 invalid_token (RFC 6750 §3.1).
port_refused_token() {
  [[ "$PORT_HTTP_STATUS" == 401 ]] || return 1
  jq -e 'type == "object" and .error == "invalid_token"' <<<"$PORT_HTTP_BODY" >/dev/null 2>&1
}

# The token file must be a regular file of this user that no one else can read (as ssh
# treats private keys). Sets PORT_FILE_TOKEN.
port_read_token_file() {
  local file=$1 mode
  PORT_FILE_TOKEN=''
  if [[ ! -f "$file" || -L "$file" ]]; then
    port_error "token file ${file} does not exist or is not a regular file"
    return 1
  fi
  if [[ ! -O "$file" ]]; then
    port_error "token file ${file} is not owned by this user"
    return 1
  fi
  mode=$(stat -c '%a' -- "$file" 2>/dev/null || stat -f '%Lp' -- "$file")
  if [[ ! "$mode" =~ ^[0-7]*[0-7]00$ ]]; then
    port_error "token file ${file} is readable by others (mode ${mode}); it must be 0600"
    return 1
  fi
  PORT_FILE_TOKEN=$(<"$file")
}

# port_pinned_url TOKEN_FILE: sets PORT_PINNED_URL to the URL of the Port that issued the
# token file — the `url` the environment hook wrote next to it — or '' when there is none
# (a token file this plugin did not write). The job's tokens go only there, whatever
# --url or PORT_URL say now (lib/pre-exit.bash does the same): a renewal sends
# a fresh Buildkite token for Port's audience, which whoever receives it can exchange at
# Port first. A url file that is not a regular file of this user, or holds no usable URL,
# is an error: which Port issued the token is then unknown.
port_pinned_url() {
  local file raw
  file="$(dirname -- "$1")/url"
  PORT_PINNED_URL=''
  [[ -e "$file" || -L "$file" ]] || return 0
  if [[ ! -f "$file" || -L "$file" || ! -O "$file" ]]; then
    port_error "${file} is not a regular file of this user; cannot tell which Port issued the token"
    return 1
  fi
  raw=$(<"$file")
  if ! PORT_PINNED_URL=$(port_check_url "$raw" 2>/dev/null); then
    PORT_PINNED_URL=''
    port_error "${file} does not hold a usable Port URL; cannot tell which Port issued the token"
    return 1
  fi
}

# port_check_renewable TOKEN_FILE TOKEN: 0 when the token in TOKEN_FILE can be renewed
# here: inside its own Buildkite job (BUILDKITE_JOB_ID = the token's `sub`, the agent's
# access token and Job API for `oidc request-token` and `redactor add`, buildkite-agent
# on PATH) with the audience and Port URL the environment hook wrote next to the token.
# Otherwise 1, and PORT_RENEW_BLOCKER says why.
port_check_renewable() {
  local file=$1 token=$2 audience_file url_file sub
  PORT_RENEW_BLOCKER=''
  if [[ -z "$file" ]]; then
    PORT_RENEW_BLOCKER='the token came from $PORT_TOKEN; only a token file (--token-file) can be renewed'
  elif [[ -z "${BUILDKITE_JOB_ID-}" || -z "${BUILDKITE_AGENT_ACCESS_TOKEN-}" ]]; then
    PORT_RENEW_BLOCKER='not inside a Buildkite job (BUILDKITE_JOB_ID and BUILDKITE_AGENT_ACCESS_TOKEN are not set)'
  elif [[ -z "${BUILDKITE_AGENT_JOB_API_SOCKET-}" ]]; then
    PORT_RENEW_BLOCKER='the agent'"'"'s Job API (BUILDKITE_AGENT_JOB_API_SOCKET) is not available to register a new token with the log redactor'
  elif ! command -v buildkite-agent >/dev/null 2>&1; then
    PORT_RENEW_BLOCKER='buildkite-agent is not on PATH'
  else
    audience_file="$(dirname -- "$file")/audience"
    url_file="$(dirname -- "$file")/url"
    sub=$(port_token_claims "$token" | jq -r '.sub // "" | tostring' 2>/dev/null || true)
    if [[ ! -f "$audience_file" || -L "$audience_file" || ! -O "$audience_file" ]]; then
      PORT_RENEW_BLOCKER="there is no audience file next to the token file (${audience_file}; the plugin's environment hook writes it)"
    elif [[ ! -f "$url_file" || -L "$url_file" || ! -O "$url_file" ]]; then
      PORT_RENEW_BLOCKER="there is no url file next to the token file (${url_file}; the plugin's environment hook writes it)"
    elif [[ "$sub" != "$BUILDKITE_JOB_ID" ]]; then
      PORT_RENEW_BLOCKER='the token belongs to another job than this one (BUILDKITE_JOB_ID)'
    fi
  fi
  [[ -z "$PORT_RENEW_BLOCKER" ]]
}

# port_lock PATH / port_unlock: an exclusive lock among this job's processes (the AWS
# SDK may run credential_process concurrently). flock(1) where it exists (util-linux),
# else a directory: mkdir is atomic (POSIX), and a lock whose holder died is broken.
# The lock only saves needless exchanges: the token file is replaced atomically either way.
port_lock() {
  local path=$1 deadline holder
  PORT_LOCK_FD='' PORT_LOCK_DIR=''
  if command -v flock >/dev/null 2>&1; then
    if ! exec {PORT_LOCK_FD}>>"$path"; then
      port_error "cannot open the lock file ${path}"
      return 1
    fi
    if ! flock -w "$PORT_LOCK_TIMEOUT" "$PORT_LOCK_FD"; then
      exec {PORT_LOCK_FD}>&-
      PORT_LOCK_FD=''
      port_error "another process held the lock ${path} for ${PORT_LOCK_TIMEOUT}s; giving up"
      return 1
    fi
    return 0
  fi
  deadline=$(($(port_now) + PORT_LOCK_TIMEOUT))
  until mkdir -m 700 -- "${path}.d" 2>/dev/null; do
    holder=$(cat -- "${path}.d/pid" 2>/dev/null || true)
    if [[ "$holder" =~ ^[0-9]+$ ]] && ! kill -0 "$holder" 2>/dev/null; then
      rm -rf -- "${path}.d"
      continue
    fi
    if (($(port_now) >= deadline)); then
      port_error "another process held the lock ${path}.d for ${PORT_LOCK_TIMEOUT}s; giving up (remove it if no renewal is running)"
      return 1
    fi
    sleep 0.1
  done
  PORT_LOCK_DIR="${path}.d"
  printf '%s' "$$" >"${PORT_LOCK_DIR}/pid"
}

port_unlock() {
  if [[ -n "${PORT_LOCK_FD-}" ]]; then
    exec {PORT_LOCK_FD}>&-
  elif [[ -n "${PORT_LOCK_DIR-}" ]]; then
    rm -rf -- "$PORT_LOCK_DIR"
  fi
  PORT_LOCK_FD='' PORT_LOCK_DIR=''
}

# port_renew_token_file URL TOKEN_FILE STALE_TOKEN: makes TOKEN_FILE hold a usable Port
# token and sets PORT_TOKEN_VALUE to it. URL must be the token file's pinned URL
# (port_pinned_url); any other is refused before a Buildkite token is requested. STALE_TOKEN is the token the caller found
# expiring or Port refused. Under the lock, the file is read again: if another process
# already replaced STALE_TOKEN with a token that is not expiring, that one is used.
# Otherwise a fresh Buildkite token is exchanged for the scopes STALE_TOKEN's file token
# held, the new token is registered with the log redactor, and the file is replaced
# atomically (a temporary file in the same directory, then mv: rename(2)).
# Check port_check_renewable first.
port_renew_token_file() {
  local rc=0
  port_lock "${2}.lock" || return 1
  port_renew_token_file_locked "$@" || rc=$?
  port_unlock
  return "$rc"
}

port_renew_token_file_locked() {
  local url=$1 file=$2 stale=$3 dir claims audience s tmp new_sub
  local -a scopes=() held=()
  PORT_TOKEN_VALUE=''
  dir=$(dirname -- "$file")
  port_read_token_file "$file" || return 1
  if [[ "$PORT_FILE_TOKEN" != "$stale" ]] && ! port_token_expiring "$PORT_FILE_TOKEN"; then
    PORT_TOKEN_VALUE=$PORT_FILE_TOKEN
    return 0
  fi
  if ! claims=$(port_token_claims "$PORT_FILE_TOKEN"); then
    port_error "the token in ${file} is not a JWT; cannot renew it"
    return 1
  fi
  read -r -a held <<<"$(jq -r '.scope // "" | tostring' <<<"$claims")"
  for s in "${held[@]}"; do
    if [[ ! "$s" =~ $PORT_CREDENTIAL_NAME_RE ]]; then
      port_error "the token in ${file} holds a scope that is not a credential name; cannot renew it"
      return 1
    fi
    scopes+=("$s")
  done
  audience=$(<"${dir}/audience")
  if [[ -z "$audience" || "$audience" =~ [[:cntrl:]] ]]; then
    port_error "${dir}/audience does not hold an audience; cannot renew the token"
    return 1
  fi
  port_pinned_url "$file" || return 1
  if [[ -z "$PORT_PINNED_URL" ]]; then
    port_error "there is no url file next to ${file}; cannot tell which Port to renew the token at"
    return 1
  fi
  if [[ "$url" != "$PORT_PINNED_URL" ]]; then
    port_error "refusing to renew the token in ${file} at ${url}: it was issued by the Port at ${PORT_PINNED_URL}, and a fresh Buildkite token goes only there"
    return 1
  fi

  port_request_buildkite_token "$audience" || return 1
  port_exchange "$url" "$PORT_BUILDKITE_TOKEN" "${scopes[@]}" || return 1
  PORT_BUILDKITE_TOKEN=''
  new_sub=$(port_token_claims "$PORT_TOKEN_VALUE" | jq -r '.sub // "" | tostring' 2>/dev/null || true)
  if [[ "$new_sub" != "$BUILDKITE_JOB_ID" ]]; then
    PORT_TOKEN_VALUE=''
    port_error 'the renewed Port token is not for this job (its sub is not BUILDKITE_JOB_ID); not using it'
    return 1
  fi
  # Registered with the job's log redactor before anything could print it
  # (https://buildkite.com/docs/agent/v3/cli-redactor).
  port_redact_json "$(printf '%s' "$PORT_TOKEN_VALUE" | jq -Rsc '{port_token: .}')" || {
    PORT_TOKEN_VALUE=''
    return 1
  }
  # mktemp creates the file 0600; in the token's directory, so mv is a rename(2).
  if ! tmp=$(mktemp "${dir}/.port-token.XXXXXXXXXX"); then
    PORT_TOKEN_VALUE=''
    port_error "cannot create a temporary file in ${dir} to replace the token"
    return 1
  fi
  if ! { printf '%s' "$PORT_TOKEN_VALUE" >"$tmp" && chmod 600 -- "$tmp" && mv -f -- "$tmp" "$file"; }; then
    rm -f -- "$tmp"
    PORT_TOKEN_VALUE=''
    port_error "cannot replace the token file ${file}"
    return 1
  fi
}
