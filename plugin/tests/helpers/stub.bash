# shellcheck shell=bash
# A small stand-in for the bats-mock stubs that Buildkite's plugin tester bundles
# (https://github.com/buildkite-plugins/buildkite-plugin-tester), so these tests need
# nothing but `bats`:
#
#   stub CMD ['PATTERN : COMMAND' …]   put a fake CMD first on PATH with a plan of calls
#   unstub CMD                         fail unless every planned call happened, in order,
#                                      and nothing else was called; then remove the fake
#
# Each call of CMD takes the next line of the plan. Unlike bats-mock, PATTERN is one bash
# glob matched against the call's arguments joined with single spaces (`*` for anything; an empty
# PATTERN matches a call without arguments). COMMAND is evaluated by bash with the
# call's arguments as "$@" and the caller's stdin, so it can print an answer, read the
# request (`cat >file`) or fail (`exit 7`); its status is the call's. A call that does
# not match its line, or comes after the plan's end, exits 1 and is reported by unstub.
# `stub CMD` with no lines: CMD must not be called at all.
#
# The fake uses bash builtins only, so stubbing cat, sed or jq cannot break it.

stub_dir() {
  printf '%s/stubs' "${BATS_TEST_TMPDIR:?stub needs bats 1.4 or later}"
}

stub() {
  local cmd=${1:?usage: stub CMD [PATTERN : COMMAND]…} dir
  shift
  dir=$(stub_dir)
  mkdir -p "${dir}/bin"
  case ":${PATH}:" in
    *":${dir}/bin:"*) ;;
    *) export PATH="${dir}/bin:${PATH}" ;;
  esac
  : >"${dir}/${cmd}.plan"
  if [[ $# -gt 0 ]]; then printf '%s\0' "$@" >"${dir}/${cmd}.plan"; fi
  printf '0\n' >"${dir}/${cmd}.index"
  : >"${dir}/${cmd}.errors"
  {
    printf '#!/usr/bin/env bash\n'
    printf '# Fake %s written by tests/helpers/stub.bash.\n' "$cmd"
    printf 'stub_cmd=%q stub_dir=%q\n' "$cmd" "$dir"
    cat <<'FAKE'
mapfile -d '' -t stub_plan <"${stub_dir}/${stub_cmd}.plan"
read -r stub_index <"${stub_dir}/${stub_cmd}.index"
stub_index=$((stub_index + 1))
printf '%s\n' "$stub_index" >"${stub_dir}/${stub_cmd}.index"
stub_args="$*"
if ((stub_index > ${#stub_plan[@]})); then
  printf '%s: unexpected call #%s: %s %s\n' "$stub_cmd" "$stub_index" "$stub_cmd" "$stub_args" >>"${stub_dir}/${stub_cmd}.errors"
  printf '%s (stub): unexpected call: %s\n' "$stub_cmd" "$stub_args" >&2
  exit 1
fi
stub_line=${stub_plan[$((stub_index - 1))]}
if [[ "$stub_line" == *' : '* || "$stub_line" == ': '* ]]; then
  if [[ "$stub_line" == ': '* ]]; then stub_pattern='' stub_command=${stub_line#': '}
  else stub_pattern=${stub_line%%' : '*} stub_command=${stub_line#*' : '}
  fi
else
  stub_pattern=$stub_line stub_command=''
fi
# An unquoted right-hand side of == is a glob.
# shellcheck disable=SC2053
if [[ -z "$stub_pattern" && -n "$stub_args" ]] || [[ -n "$stub_pattern" && "$stub_args" != $stub_pattern ]]; then
  printf '%s: call #%s was "%s %s", the plan expected "%s %s"\n' "$stub_cmd" "$stub_index" "$stub_cmd" "$stub_args" "$stub_cmd" "$stub_pattern" >>"${stub_dir}/${stub_cmd}.errors"
  printf '%s (stub): unexpected arguments: %s\n' "$stub_cmd" "$stub_args" >&2
  exit 1
fi
unset stub_plan stub_index stub_args stub_line stub_pattern
eval "$stub_command"
FAKE
  } >"${dir}/bin/${cmd}"
  chmod +x "${dir}/bin/${cmd}"
}

unstub() {
  local cmd=${1:?usage: unstub CMD} dir index planned rc=0
  local -a plan=()
  dir=$(stub_dir)
  if [[ ! -f "${dir}/${cmd}.plan" ]]; then
    printf 'unstub %s: %s was not stubbed\n' "$cmd" "$cmd" >&2
    return 1
  fi
  mapfile -d '' -t plan <"${dir}/${cmd}.plan"
  planned=${#plan[@]}
  read -r index <"${dir}/${cmd}.index"
  if [[ -s "${dir}/${cmd}.errors" ]]; then
    printf 'unstub %s: calls that did not follow the plan:\n' "$cmd" >&2
    cat "${dir}/${cmd}.errors" >&2
    rc=1
  fi
  if ((index < planned)); then
    printf 'unstub %s: %s of %s planned calls happened; missing: %s\n' "$cmd" "$index" "$planned" "${plan[*]:index}" >&2
    rc=1
  fi
  rm -f "${dir}/bin/${cmd}" "${dir}/${cmd}.plan" "${dir}/${cmd}.index" "${dir}/${cmd}.errors"
  return "$rc"
}
