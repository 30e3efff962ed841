# Helpers for the test scripts (source it): each check is one test case, and
# summary prints the Catch2-style line scripts/run-tests adds up, then exits.
#   check NAME COMMAND...   passes when COMMAND succeeds
#   fails NAME COMMAND...   passes when COMMAND fails (a planted mistake is caught)
# Output of the last command goes to $work/last.log; set `work` (a scratch
# folder) before calling them.
passed=0
failed=0
check() {
  local name=$1
  shift
  if "$@" > "$work/last.log" 2>&1; then
    echo "ok: $name"
    passed=$((passed + 1))
  else
    echo "FAILED: $name"
    tail -n 20 "$work/last.log"
    failed=$((failed + 1))
  fi
}
fails() {
  local name=$1
  shift
  if "$@" > "$work/last.log" 2>&1; then
    echo "FAILED (not caught): $name"
    failed=$((failed + 1))
  else
    echo "ok (caught): $name: $(tail -n 1 "$work/last.log")"
    passed=$((passed + 1))
  fi
}
summary() {
  echo "test cases: $((passed + failed)) | $passed passed | $failed failed"
  [[ $failed -eq 0 ]]
  exit
}
