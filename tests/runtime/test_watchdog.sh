#!/usr/bin/env bash
# The collective watchdog ends a job in which rank 1 of 3 never reaches a collective, and names
# it (see watchdog_hang.c for the modes). Asserts: a non-zero exit that is not a timeout, the
# whole job within 20 s, no alarm during phase 1 (collectives that wait ~1 s under a 2 s
# timeout), and for the watchdog's own reports: no abort earlier than the 2 s timeout after the
# hang began, a reported wait of at least 2 s, and a message naming rank 1 as the mode expects.
# For a dead rank the launcher's own message is enough, and it kills the job before any
# timeout; it names the rank (Open MPI 4.1) or a pid of the job (MPICH 4.0.2's Hydra, see the
# dead case below; every rank prints its pid, and cohort logs every rank's pid at debug level):
#   Open MPI 4.1: "mpirun noticed that process rank 1 with PID 0 on node x exited on signal 9"
#   MPICH 4.0.2:  "BAD TERMINATION OF ONE OF YOUR APPLICATION PROCESSES" / "PID 123 RUNNING AT x"
#   (newer MPICH: "RANK 1 PID 123 RUNNING AT x")
# Usage: test_watchdog.sh MODE <watchdog_hang program> <mpiexec> <numproc flag> [mpiexec flags...]
set -u
mode=$1 prog=$2 mpiexec=$3 npflag=$4
shift 4
if [ ! -x "$prog" ] || ! command -v "$mpiexec" >/dev/null 2>&1; then
  echo "SKIP: need $prog and $mpiexec"
  exit 77
fi
err=$(mktemp) out=$(mktemp)
trap 'rm -f "$err" "$out"' EXIT
start=$(date +%s%3N)
timeout 60 "$mpiexec" "$npflag" 3 "$@" "$prog" "$mode" >"$out" 2>"$err"
status=$?
end=$(date +%s%3N)
elapsed_ms=$((end - start))
echo "mode $mode: exit status $status after ${elapsed_ms} ms"
echo "--- stdout"; cat "$out"
echo "--- stderr"; cat "$err"
echo "---"
if grep -q '^SKIP' "$out"; then exit 77; fi

fail=0
check() { # check DESCRIPTION REGEX FILE...: extended regex must match
  local what=$1 re=$2
  shift 2
  if ! cat "$@" | grep -Eq -- "$re"; then echo "FAIL: $what (no match for /$re/)"; fail=1; fi
}
if [ "$status" -eq 0 ]; then echo "FAIL: the job exited 0"; fail=1; fi
if [ "$status" -eq 124 ]; then echo "FAIL: the job hung (killed by timeout 60)"; fail=1; fi
if [ "$elapsed_ms" -ge 20000 ]; then echo "FAIL: took ${elapsed_ms} ms (limit 20 s)"; fail=1; fi
if grep -q 'left the' "$err"; then echo "FAIL: a collective completed without rank 1"; fail=1; fi
check "phase 1 (waits of ~1 s under a 2 s timeout) did not complete: false alarm?" \
  '^phase 1 done$' "$out"

hang_ms=$(sed -n 's/^hang starts at \([0-9]*\)$/\1/p' "$out")
if [ "$mode" != dead ]; then
  if [ -z "$hang_ms" ]; then
    echo "FAIL: no 'hang starts at' line"; fail=1
  else
    after=$((end - hang_ms))
    echo "the job ended ${after} ms after the hang began"
    if [ "$after" -lt 2000 ]; then echo "FAIL: ended before the 2 s timeout"; fail=1; fi
  fi
  waited=$(grep -Eo '(waited|took) [0-9]+\.[0-9]+ s' "$err" | head -1 | grep -Eo '[0-9]+\.[0-9]+')
  if [ -z "$waited" ] || ! awk -v w="$waited" 'BEGIN { exit !(w >= 2.0) }'; then
    echo "FAIL: no report of a wait of at least 2.0 s (got '${waited:-none}')"; fail=1
  fi
  check "the report names the collective and the step" 'allreduce \(step 99, collective #[0-9]+\)' "$err"
fi
case $mode in
hang)
  check "summary: ranks 0 and 2 waited" 'waited [0-9.]+ s on ranks 0,2;' "$err"
  check "summary: rank 1 alive but outside the collective" \
    'rank 1 did not reach it \(alive, computing at step 99 for' "$err"
  ;;
stop)
  check "summary: ranks 0 and 2 waited" 'waited [0-9.]+ s on ranks 0,2;' "$err"
  check "summary: rank 1 hung or dead" 'rank 1 did not reach it \(hung or dead\)' "$err"
  ;;
slow)
  check "summary: a slow rank, ranks 0 and 2 seen waiting, rank 1 not" \
    'took [0-9.]+ s on rank 0, over the 2 s timeout, and completed while .*seen waiting in it: '\
'ranks 0,2; not seen waiting \(the late ones are among them\): rank 1;' "$err"
  ;;
desync)
  check "summary: ranks 0 and 2 waited" 'waited [0-9.]+ s on ranks 0,2;' "$err"
  check "summary: rank 1 in another collective" \
    'desync: rank 1 waits in broadcast \(step 99, collective #[0-9]+\)' "$err"
  ;;
funneled)
  check "a stalled rank reports alone" \
    'collective watchdog: allreduce .* another rank is hung or dead' "$err"
  ;;
dead)
  # Open MPI names the rank. MPICH 4.0.2's Hydra prints the pid of the first process in rank
  # order whose exit status is non-zero, and the ranks it kills in its cleanup exit with signal
  # 9 too: the banner can name rank 0's pid although rank 1 died. So under Hydra the check is
  # that the banner names a process of this job killed by signal 9.
  if grep -q 'BAD TERMINATION' "$out" "$err"; then
    named=$(sed -n 's/^=\+ \+PID \([0-9]*\) RUNNING AT.*/\1/p' "$out" "$err" | head -1)
    if [ -z "$named" ] || ! grep -q "^rank [0-2] is pid $named\$" "$out"; then
      echo "FAIL: Hydra's banner names pid '${named:-none}', not a rank of this job"; fail=1
    fi
    check "Hydra reports signal 9" 'EXIT CODE: 9|Killed \(signal 9\)' "$out" "$err"
  else
    check "the output names rank 1" 'process rank 1 with PID|RANK 1 PID|rank 1 did not reach it' \
      "$out" "$err"
  fi
  ;;
*)
  echo "FAIL: unknown mode $mode"; fail=1
  ;;
esac
if [ "$mode" != dead ] && [ "$mode" != funneled ]; then
  n=$(grep -Ec 'collective watchdog: .* (on|waiting in it:) ranks' "$err")
  if [ "$n" -ne 1 ]; then echo "FAIL: $n summaries (expected exactly one)"; fail=1; fi
fi
[ "$fail" -eq 0 ] && echo "PASS"
exit "$fail"
