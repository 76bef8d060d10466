#!/usr/bin/env bash
# A rank dies (SIGKILL) mid-run: the launcher ends the job, launchers/restart.sh relaunches it
# with run.resume=auto, and the final parameters equal an uninterrupted run's bit for bit.
source "$(dirname "$0")/lib.sh"
big=(model.hidden=512 model.depth=3 train.steps=120 run.checkpoint.every=20 train.log_every=5)
train 2 "$work/ref" "${big[@]}" >/dev/null

dir=$work/killed
"$src/launchers/restart.sh" --max-restarts 2 --delay 0.5 -- \
  "$mpiexec" -n 2 "${flags[@]}" "$cohort" train "$src/configs/mlp-digits.yaml" \
  data.path="$work/digits.h5" run.dir="$dir" optim.schedule=constant optim.warmup_steps=5 \
  train.log_every=10 train.eval_every=20 run.checkpoint.keep_last=10 "${big[@]}" \
  >"$work/out.txt" 2>&1 &
wrapper=$!
wait_step "$dir" 45 # a checkpoint at 40 exists, the next is not yet written
kill -9 "$(rank_pid "$dir" 1)"
rc=0
wait "$wrapper" || rc=$?
cat "$work/out.txt"
((rc == 0)) || { echo "restart.sh exited $rc" >&2; exit 1; }
grep -q "restarting (1/2) with run.resume=auto" "$work/out.txt"
grep -q "resumed from .*step-000000[4-9]0.h5" "$work/out.txt"
compare params "$(ckpt "$work/ref" 120)" "$(ckpt "$dir" 120)"
echo "ok: rank killed, restarted, bit-identical to the uninterrupted run"
