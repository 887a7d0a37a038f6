#!/usr/bin/env bats
# The tests' own stub helper (helpers/stub.bash): a call that does not follow the plan,
# a planned call that never happened and an unplanned call all fail unstub.

load helpers/stub

@test "stub: a call with other arguments than planned fails, and unstub reports it" {
  stub foo "a b : echo hi"
  run foo a c
  [ "$status" -eq 1 ]
  run unstub foo
  [ "$status" -eq 1 ]
  [[ "$output" == *'call #1 was "foo a c", the plan expected "foo a b"'* ]]
}
@test "stub: a planned call that never happened fails unstub" {
  stub foo "a : echo hi" "b : echo there"
  run foo a
  [ "$output" = hi ]
  run unstub foo
  [ "$status" -eq 1 ]
  [[ "$output" == *'1 of 2 planned calls happened; missing: b : echo there'* ]]
}
@test "stub: with no plan, any call fails unstub" {
  stub foo
  run foo x
  run unstub foo
  [ "$status" -eq 1 ]
  [[ "$output" == *'unexpected call #1: foo x'* ]]
}
@test "stub: globs match, and the command gets the arguments and stdin" {
  stub foo "* --x * : cat; echo \"\$#\""
  run bash -c 'echo in | foo 1 --x 2'
  [ "$output" = $'in\n3' ]
  unstub foo
}
