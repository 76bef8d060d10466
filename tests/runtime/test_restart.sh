#!/usr/bin/env bash
# launchers/restart.sh against a fake launch command (no MPI): relaunches with run.resume=auto
# after a failure, honours the restart limit (option and COHORT_MAX_RESTARTS) and the delay,
# never relaunches after exit status 2 or after a forwarded SIGTERM / SIGUSR1, and exits with
# the last status.
# Usage: test_restart.sh <path to launchers/restart.sh>
set -u
wrapper=$1
[ -x "$wrapper" ] || { echo "FAIL: $wrapper is not executable"; exit 1; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

# The fake command: call k (from 1) records its arguments, then exits with the k-th word of
# FAKE_STATUSES (the last word for later calls). FAKE_WAIT=1 makes it wait for a signal
# instead: TERM or USR1 make it record the signal and exit with FAKE_ON_SIGNAL.
fake=$dir/fake.sh
cat >"$fake" <<'EOF'
#!/usr/bin/env bash
n=$(( $(cat "$FAKE_DIR/count" 2>/dev/null || echo 0) + 1 ))
echo "$n" >"$FAKE_DIR/count"
printf '%s|' "$@" >>"$FAKE_DIR/calls"
echo >>"$FAKE_DIR/calls"
if [ "${FAKE_WAIT:-0}" = 1 ]; then
  on_sig() { echo "$1" >>"$FAKE_DIR/signals"; kill "$sleeper" 2>/dev/null; exit "${FAKE_ON_SIGNAL:-0}"; }
  trap 'on_sig TERM' TERM
  trap 'on_sig USR1' USR1
  sleep 30 &
  sleeper=$!
  touch "$FAKE_DIR/ready"
  wait "$sleeper"
  exit 99
fi
read -r -a st <<<"$FAKE_STATUSES"
i=$(( n <= ${#st[@]} ? n - 1 : ${#st[@]} - 1 ))
exit "${st[$i]}"
EOF
chmod +x "$fake"
export FAKE_DIR=$dir

fail=0
bad() { echo "FAIL: $*"; fail=1; }
reset() { rm -f "$dir/count" "$dir/calls" "$dir/signals" "$dir/ready" "$dir/err"; }
calls() { cat "$dir/count" 2>/dev/null || echo 0; }
# run EXPECTED_STATUS EXPECTED_CALLS STATUSES WRAPPER-ARGS...: runs the wrapper in the foreground.
run() {
  local want_status=$1 want_calls=$2
  export FAKE_STATUSES=$3
  shift 3
  reset
  "$wrapper" "$@" 2>"$dir/err"
  local status=$?
  echo "== restart.sh $* (fake statuses: $FAKE_STATUSES): status $status, $(calls) calls"
  sed 's/^/   /' "$dir/err"
  [ "$status" -eq "$want_status" ] || bad "exit status $status, expected $want_status"
  [ "$(calls)" -eq "$want_calls" ] || bad "$(calls) calls, expected $want_calls"
}
has() { grep -qF -- "$1" "$dir/err" || bad "stderr lacks '$1'"; }

# Two failures, then success: relaunched twice, every call with the user's arguments intact
# and run.resume=auto appended.
run 0 3 "1 3 0" --max-restarts 3 --delay 0 -- "$fake" train "cfg with space.yaml" train.steps=10
has "restart.sh: attempt 1 exited with status 1; restarting (1/3) with run.resume=auto"
has "restart.sh: attempt 2 exited with status 3; restarting (2/3) with run.resume=auto"
want='train|cfg with space.yaml|train.steps=10|run.resume=auto|'
while IFS= read -r line; do
  [ "$line" = "$want" ] || bad "the command got '$line', expected '$want'"
done <"$dir/calls"

# The limit: always failing, 2 restarts allowed -> 3 calls, the last status propagates.
run 5 3 "1 4 5" --max-restarts 2 --delay 0 -- "$fake"
has "attempt 3 exited with status 5; giving up after 2 restarts"
# Killed by a signal (status 137) counts as a failure too.
run 137 2 "137" --max-restarts=1 --delay=0 -- "$fake"
# The limit from the environment, and the option winning over it.
COHORT_MAX_RESTARTS=1 run 7 2 "7" --delay 0 -- "$fake"
COHORT_MAX_RESTARTS=5 run 7 1 "7" --max-restarts 0 --delay 0 -- "$fake"
# The default limit is 3 (and '--' may be left out).
COHORT_MAX_RESTARTS='' run 1 4 "1" --delay 0 "$fake"

# Exit status 2 (configuration error): never relaunched, first or later attempt.
run 2 1 "2" --delay 0 -- "$fake"
has "attempt 1 exited with status 2 (configuration or usage error); not restarting"
run 2 2 "1 2 0" --delay 0 -- "$fake"

# The default delay (2 s) separates attempts.
t0=$(date +%s%N)
run 0 2 "1 0" -- "$fake"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
echo "   (took $ms ms)"
[ "$ms" -ge 2000 ] || bad "two attempts with the default delay took only $ms ms"

# Usage errors exit 2 without running anything.
run 2 0 "0" --delay 0 --
run 2 0 "0" --max-restarts x -- "$fake"
run 2 0 "0" --delay -1 -- "$fake"
run 2 0 "0" --bogus -- "$fake"

# Signals: started in the background, signalled once the fake command waits.
# signal_run SIGNAL FAKE_ON_SIGNAL EXPECTED_STATUS [FORWARDED AS]: one call, and the fake
# command got the signal.
signal_run() {
  local sig=$1 on_signal=$2 want=$3 got=${4:-$1}
  reset
  # env --default-signal: a background job of a script starts with SIGINT ignored, which a
  # shell cannot trap; an interactive user's restart.sh gets SIGINT as usual.
  FAKE_WAIT=1 FAKE_ON_SIGNAL=$on_signal FAKE_STATUSES=1 env --default-signal=INT "$wrapper" \
    --delay 0 -- "$fake" 2>"$dir/err" &
  local pid=$! i
  for i in $(seq 100); do [ -e "$dir/ready" ] && break; sleep 0.05; done
  [ -e "$dir/ready" ] || bad "the fake command did not start"
  kill -"$sig" "$pid"
  wait "$pid"
  local status=$?
  echo "== SIG$sig to restart.sh, command exits $on_signal on it: status $status, $(calls) calls"
  sed 's/^/   /' "$dir/err"
  [ "$status" -eq "$want" ] || bad "exit status $status, expected $want"
  [ "$(calls)" -eq 1 ] || bad "$(calls) calls after SIG$sig, expected 1 (no restart)"
  grep -qx "$got" "$dir/signals" 2>/dev/null || bad "the command did not receive SIG$got"
}
signal_run TERM 0 0
signal_run USR1 0 0
signal_run TERM 143 143 # a non-zero exit after a forwarded signal is not restarted either
has "after a forwarded signal; not restarting"
signal_run INT 0 0 TERM # forwarded as SIGTERM

# A signal during the pause between attempts ends the wrapper with the last status.
reset
FAKE_STATUSES="6 0" "$wrapper" --delay 20 -- "$fake" 2>"$dir/err" &
pid=$!
for i in $(seq 100); do grep -q restarting "$dir/err" 2>/dev/null && break; sleep 0.05; done
t0=$(date +%s%N)
kill -TERM "$pid"
wait "$pid"
status=$?
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
echo "== SIGTERM during the pause: status $status after $ms ms, $(calls) calls"
sed 's/^/   /' "$dir/err"
[ "$status" -eq 6 ] || bad "exit status $status, expected 6"
[ "$(calls)" -eq 1 ] || bad "$(calls) calls, expected 1"
[ "$ms" -lt 5000 ] || bad "the wrapper took $ms ms to stop during a 20 s pause"

[ "$fail" -eq 0 ] && echo "PASS"
exit "$fail"
