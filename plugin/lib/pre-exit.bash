#!/usr/bin/env bash
# The work of hooks/pre-exit, as its own bash process (strict mode stays here):
# POST <url>/v1/revocations {"scope":"job","id":$BUILDKITE_JOB_ID,"reason":"pre-exit hook"}
# with the job's Port token, then remove the state directory hooks/environment made.
# Port refuses an expired bearer, so a token that expired during a long job is renewed
# first (lib/token.bash), as bin/port-credential-process does.
# Exits 0 when the tokens were revoked or there was nothing to revoke, 1 otherwise
# (hooks/pre-exit reports it without failing the job).
set -euo pipefail
# Never trace: a job environment exporting SHELLOPTS with xtrace would print the Port
# token and secret values to the job log before the redactor knows them.
set +x

PORT_PLUGIN_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=plugin/lib/port.bash
. "${PORT_PLUGIN_ROOT}/lib/port.bash"
# shellcheck source=plugin/lib/token.bash
. "${PORT_PLUGIN_ROOT}/lib/token.bash"

# Only a directory this plugin made is removed: the variable is in the job's
# environment, where the step's command could have changed it.
port_state_dir() {
  local dir=${PORT_PLUGIN_STATE_DIR-}
  [[ -n "$dir" && "$(basename -- "$dir")" =~ ^port-plugin\.[A-Za-z0-9]{10}$ && -d "$dir" && ! -L "$dir" && -O "$dir" ]] || return 1
  printf '%s' "$dir"
}

# port_renew_for_revocation STATE URL TOKEN: sets PORT_TOKEN_VALUE to a renewed token.
port_renew_for_revocation() {
  local state=$1 url=$2 token=$3
  if ! port_check_renewable "${state}/port-token" "$token"; then
    port_warn "the Port token has expired and cannot be renewed to revoke the job (${PORT_RENEW_BLOCKER}); its tokens expire on their own and Port revokes them when the job.finished webhook arrives"
    return 1
  fi
  if ! port_renew_token_file "$url" "${state}/port-token" "$token"; then
    port_warn "the Port token has expired or is about to and could not be renewed to revoke the job (see above); its tokens expire on their own and Port revokes them when the job.finished webhook arrives"
    return 1
  fi
}

port_post_revocation() {
  local url=$1 token=$2 body=$3
  if ! port_http POST "${url}/v1/revocations" "$token" 'application/json' <<<"$body"; then
    port_warn "the job's Port tokens were not revoked; they expire on their own and Port revokes them when the job.finished webhook arrives"
    return 1
  fi
}

port_revoke() {
  local state=$1 url token body
  if [[ ! -f "${state}/port-token" || ! -f "${state}/url" ]]; then
    port_info 'Port: no Port token was issued to this job; nothing to revoke'
    return 0
  fi
  local cmd
  for cmd in curl jq; do
    if ! command -v "$cmd" >/dev/null 2>&1; then
      port_warn "${cmd} is not on this agent's PATH; cannot revoke this job's Port tokens (they expire on their own, and Port revokes them when the job.finished webhook arrives)"
      return 1
    fi
  done
  token=$(<"${state}/port-token")
  # The token goes back only to the Port that issued it, whatever the options say now.
  url=$(<"${state}/url")
  # A token bound to the host key is renewed with a proof of it (lib/port.bash); without
  # one, the unexpired token still revokes the job.
  port_bound_key "${state}/port-token" || PORT_PLUGIN_DPOP_KEY=''
  if [[ -z "${BUILDKITE_JOB_ID-}" ]]; then
    port_warn 'BUILDKITE_JOB_ID is not set; cannot revoke this job'"'"'s Port tokens'
    return 1
  fi
  body=$(jq -cn --arg id "$BUILDKITE_JOB_ID" '{scope: "job", id: $id, reason: "pre-exit hook"}')
  # Port accepts a revoked token of the job here (so the call is idempotent after
  # job.finished) but not an expired one: one that expired during a long job is renewed
  # first, or when Port's clock says it expired (RFC 6750 §3.1 invalid_token).
  local renewed=false
  if port_token_expiring "$token" && port_check_renewable "${state}/port-token" "$token"; then
    port_renew_for_revocation "$state" "$url" "$token" || return 1
    token=$PORT_TOKEN_VALUE renewed=true
  fi
  port_post_revocation "$url" "$token" "$body" || return 1
  if [[ "$renewed" == false ]] && port_refused_token; then
    port_renew_for_revocation "$state" "$url" "$token" || return 1
    token=$PORT_TOKEN_VALUE
    port_post_revocation "$url" "$token" "$body" || return 1
  fi
  if [[ "$PORT_HTTP_STATUS" != 2?? ]]; then
    port_warn "$(port_http_failure 'revoking the job'"'"'s Port tokens'); they expire on their own"
    return 1
  fi
  port_info "Port: revoked this job's Port tokens"
}

main() {
  local state rc=0
  if ! state=$(port_state_dir); then
    if [[ -n "${PORT_PLUGIN_STATE_DIR-}" ]]; then
      port_warn "PORT_PLUGIN_STATE_DIR does not name this plugin's directory; not revoking or removing anything"
      return 1
    fi
    return 0
  fi
  port_revoke "$state" || rc=$?
  rm -rf -- "$state"
  return "$rc"
}

main "$@"
