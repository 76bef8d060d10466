#!/usr/bin/env bash
# Preemption: SIGTERM delivered to ONE rank (rank 1 of 3) makes every rank finish its step,
# write a checkpoint and exit 0; SIGUSR1 to the launcher (as Slurm's --signal does through
# srun) does the same. Resuming with run.resume=auto then ends with parameters bit-identical
# to an uninterrupted run.
source "$(dirname "$0")/lib.sh"
big=(model.hidden=512 model.depth=3 train.steps=200 run.checkpoint.every=200 train.log_every=5)

train 3 "$work/ref" "${big[@]}" >/dev/null

preempt() { # preempt RUN_DIR SIGNAL TARGET(rank1|launcher)
  local dir=$1 sig=$2 target=$3
  train 3 "$dir" "${big[@]}" >"$dir.out" 2>&1 &
  local launcher=$!
  wait_step "$dir" 20
  # $launcher is the subshell running train(); its child is mpirun / mpiexec.
  if [[ $target == rank1 ]]; then kill -s "$sig" "$(rank_pid "$dir" 1)"
  else kill -s "$sig" "$(pgrep -P "$launcher" | head -1)"; fi
  local rc=0
  wait "$launcher" || rc=$?
  cat "$dir.out"
  [[ $rc == 0 ]] || { echo "preempted run exited $rc" >&2; exit 1; }
  grep -q "stopping on $sig: checkpoint of step [0-9]* is .*step-" "$dir.out"
  local step
  step=$(sed -n "s/.*stopping on $sig: checkpoint of step \([0-9]*\).*/\1/p" "$dir.out" | head -1)
  ((step >= 20 && step < 200)) || { echo "checkpoint at step $step" >&2; exit 1; }
  train 3 "$dir" "${big[@]}" run.resume=auto >"$dir.out2" 2>&1
  grep -q "resumed from .*step: *$step\|resumed from .*: step $step," "$dir.out2"
  compare params "$(ckpt "$work/ref" 200)" "$(ckpt "$dir" 200)"
  echo "ok: $sig to $target: stopped at step $step, resumed, bit-identical"
}

preempt "$work/term" SIGTERM rank1
preempt "$work/usr1" SIGUSR1 launcher
