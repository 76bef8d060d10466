#!/usr/bin/env bash
# A hung rank (SIGSTOP: alive, never answering) during training: the collective watchdog
# (run.watchdog_timeout=3) ends the job within seconds, non-zero, naming the rank.
source "$(dirname "$0")/lib.sh"
dir=$work/hang
train 3 "$dir" model.hidden=512 model.depth=3 train.steps=100000 train.log_every=5 \
  run.checkpoint.every=0 run.watchdog_timeout=3 >"$work/out.txt" 2>&1 &
launcher=$!
wait_step "$dir" 10
pid=$(rank_pid "$dir" 2)
kill -STOP "$pid"
start=$(date +%s.%N)
rc=0
wait "$launcher" || rc=$?
elapsed=$(echo "$(date +%s.%N) - $start" | bc)
kill -KILL "$pid" 2>/dev/null || true
cat "$work/out.txt"
echo "job ended ${elapsed}s after rank 2 stopped, status $rc"
((rc != 0)) || { echo "the job exited 0" >&2; exit 1; }
grep -q "rank 2 did not reach it" "$work/out.txt"
(($(echo "$elapsed < 30" | bc))) || { echo "took ${elapsed}s" >&2; exit 1; }
echo "ok: hung rank 2 named, job ended in ${elapsed}s"
