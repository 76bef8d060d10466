#!/usr/bin/env bash
# SIGTERM arriving at the ranks of a 3-host job a moment apart (rank 2, 0.3 s later rank 1,
# 0.3 s later rank 0), as a node-by-node shutdown delivers it:
#   training (mlp-digits, 3 hosts x 1): the job stops as docs/faults.md says (every rank finishes
#     its step, one checkpoint is written and named in the log), the launcher exits 0 within
#     60 s, no rank is left, and the checkpoint is complete: a resume from it reaches the end;
#   serving (a GPT on 3 hosts x 1, a client querying from the root namespace all along): the
#     server stops, the launcher exits 0 within 30 s, every rank is gone.
# Usage: test_sigterm.sh COHORT SOURCE_DIR MPIEXEC [MPIEXEC_FLAGS...]
source "$(dirname "$0")/lib.sh"
cluster_up 3

# staggered_term PATTERN LAUNCHER_PID LIMIT_S LOG: TERM to ranks 2, 1, 0 0.3 s apart; the
# launcher must exit 0 within LIMIT_S and leave no rank behind.
staggered_term() {
  local pat=$1 launcher=$2 limit=$3 log=$4 pids rc=0 p t0
  mapfile -t pids < <(rank_pids "$pat" | sort -rn | awk '{print $2}')
  ((${#pids[@]} == 3)) || { echo "FAIL: found ${#pids[@]} ranks for '$pat', want 3"; exit 1; }
  t0=$(date +%s.%N)
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; sleep 0.3; done
  wait_for "$limit" sh -c "! kill -0 $launcher 2>/dev/null" ||
    { echo "FAIL: the job still runs ${limit} s after SIGTERM"; tail -5 "$log"; exit 1; }
  wait "$launcher" || rc=$?
  echo "stopped $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}') s after the first SIGTERM, exit $rc"
  ((rc == 0)) || { echo "FAIL: exit $rc"; tail -20 "$log"; exit 1; }
  for p in "${pids[@]}"; do ! kill -0 "$p" 2>/dev/null || { echo "FAIL: rank pid $p still runs"; exit 1; }; done
}

echo "== training"
args=(train "$src/configs/mlp-digits.yaml" data.path="$(digits)" model.hidden=512 model.depth=3
      train.steps=400 train.log_every=5 train.eval_every=0 run.checkpoint.every=400)
hmpirun 1 3 "$cohort" "${args[@]}" run.dir="$work/term" >"$work/term.txt" 2>&1 &
launcher=$!
wait_for 60 grep -q "step 20/400" "$work/term.txt" || { echo "FAIL: training did not reach step 20"; exit 1; }
staggered_term "run.dir=$work/term" "$launcher" 60 "$work/term.txt"
step=$(sed -n 's/.*stopping on SIGTERM.*checkpoint of step \([0-9]*\).*/\1/p' "$work/term.txt" | head -n1)
[[ -n $step ]] || { echo "FAIL: no 'stopping on SIGTERM ... checkpoint of step N'"; cat "$work/term.txt"; exit 1; }
((step >= 20 && step < 400)) || { echo "FAIL: checkpoint at step $step"; exit 1; }
hmpirun 1 3 "$cohort" "${args[@]}" train.steps=$((step + 10)) run.dir="$work/term" run.resume=auto \
  >"$work/resume.txt" 2>&1 || { echo "FAIL: resume from step $step"; exit 1; }
grep -q "resumed from .*: step $step" "$work/resume.txt" || { echo "FAIL: did not resume at $step"; exit 1; }
echo "ok: stopped with a checkpoint of step $step, which resumes"

echo "== serving"
lmpirun 1 "$cohort" train "$src/configs/gpt-tiny.yaml" data.path="$(text)" run.dir="$work/gpt" \
  model.n_layer=2 model.n_head=2 model.n_embd=48 model.context=32 train.steps=5 \
  train.batch_size=8 train.eval_every=0 optim.warmup_steps=2 run.checkpoint.every=5 >"$work/gpt.txt"
hmpirun 1 3 "$cohort" serve "$work/gpt/checkpoints" --host 0.0.0.0 --port 0 \
  --port-file "$work/srv.port" --data "$(text)" >"$work/srv.txt" 2>&1 &
srv=$!
wait_for 60 test -s "$work/srv.port" || { echo "FAIL: the server did not start"; exit 1; }
base="http://$(cl addr h1):$(cat "$work/srv.port")"
wait_for 60 curl -sf "$base/v2/health/ready" -o /dev/null || { echo "FAIL: $base not ready"; exit 1; }
( while curl -s --max-time 20 -o /dev/null -X POST "$base/v1/completions" \
    -d '{"model": "gpt", "prompt": "ROMEO:", "max_tokens": 64}'; do :; done ) &
client=$!
sleep 1
staggered_term "port-file $work/srv.port" "$srv" 30 "$work/srv.txt"
kill "$client" 2>/dev/null || true
wait "$client" 2>/dev/null || true
grep -q "server stopped" "$work/srv.txt" || { echo "FAIL: no 'server stopped'"; exit 1; }
echo "PASS: staggered SIGTERM stops training (with a checkpoint) and serving on 3 hosts"
