# Shared by the `cohort data` CLI tests (sourced; POSIX sh). Needs $cohort (the binary) and
# $dir (a scratch directory).
fail() { echo "FAIL: $*" >&2; exit 1; }

# expect CODE PATTERN ARGS...: runs `cohort ARGS`, checks the exit code and that the combined
# output matches PATTERN (grep -E).
expect() {
  code=$1 pattern=$2
  shift 2
  "$cohort" "$@" >"$dir/out.txt" 2>&1
  got=$?
  [ "$got" -eq "$code" ] || { cat "$dir/out.txt" >&2; fail "cohort $*: exit $got, expected $code"; }
  grep -Eq -- "$pattern" "$dir/out.txt" || { cat "$dir/out.txt" >&2; fail "cohort $*: output lacks '$pattern'"; }
}
