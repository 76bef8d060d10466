#!/usr/bin/env bash
# SIGTERM, and Ctrl-C (SIGINT to the whole foreground process group), to
# `launchers/restart.sh -- mpiexec ... cohort train` reach the ranks as a preemption request:
# every rank finishes its step, writes a checkpoint and exits 0, nothing is relaunched, and a
# resume ends bit-identical to an uninterrupted run. (mpirun itself kills the job on SIGTERM
# or SIGINT, losing the steps since the last checkpoint.)
source "$(dirname "$0")/lib.sh"
big=(model.hidden=512 model.depth=3 train.steps=200 run.checkpoint.every=200 train.log_every=5)
train 2 "$work/ref" "${big[@]}" >/dev/null

drill() { # drill NAME SIGNAL TARGET(wrapper|group)
  local dir=$work/$1 sig=$2 target=$3
  # setsid: the wrapper leads its own process group, as a shell in a terminal would make it.
  setsid env --default-signal=INT "$src/launchers/restart.sh" --max-restarts 2 --delay 0.5 -- \
    "$mpiexec" -n 2 "${flags[@]}" "$cohort" train "$src/configs/mlp-digits.yaml" \
    data.path="$work/digits.h5" run.dir="$dir" optim.schedule=constant optim.warmup_steps=5 \
    train.log_every=10 train.eval_every=20 run.checkpoint.keep_last=10 "${big[@]}" \
    >"$dir.out" 2>&1 &
  local wrapper=$!
  wait_step "$dir" 20
  local t0
  t0=$(date +%s%N)
  if [[ $target == group ]]; then kill -s "$sig" -- "-$wrapper"; else kill -s "$sig" "$wrapper"; fi
  local rc=0
  wait "$wrapper" || rc=$?
  local ms=$((($(date +%s%N) - t0) / 1000000))
  cat "$dir.out"
  ((rc == 0)) || { echo "restart.sh exited $rc after $sig to the $target" >&2; exit 1; }
  ! grep -q "restarting (" "$dir.out" || { echo "relaunched after $sig" >&2; exit 1; }
  local step
  step=$(sed -n "s/.*stopping on SIG[A-Z0-9]*: checkpoint of step \([0-9]*\).*/\1/p" "$dir.out" | head -1)
  [[ -n $step ]] || { echo "no checkpoint written on $sig" >&2; exit 1; }
  ((step >= 20 && step < 200)) || { echo "checkpoint at step $step" >&2; exit 1; }
  train 2 "$dir" "${big[@]}" run.resume=auto >"$dir.out2" 2>&1
  grep -q "resumed from .*: step $step," "$dir.out2"
  compare params "$(ckpt "$work/ref" 200)" "$(ckpt "$dir" 200)"
  echo "ok: $sig to the $target: checkpoint of step $step after ${ms} ms, resumed, bit-identical"
}

drill term SIGTERM wrapper
drill ctrl-c SIGINT group
