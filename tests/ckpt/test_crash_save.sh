#!/usr/bin/env bash
# A rank killed (SIGKILL) while a checkpoint is being written: the job ends non-zero, the
# previous checkpoint stays valid and `latest` names it, the half-written file is only ever a
# .partial; run.resume=auto resumes from the previous checkpoint (checksums verified) and the
# next save removes the leftover.
source "$(dirname "$0")/lib.sh"
# ~50 MiB checkpoints, written every 5 steps: each save takes a visible fraction of a second.
big=(model.hidden=1200 model.depth=4 train.steps=100000 run.checkpoint.every=5 train.log_every=5)
# attempt: run until a save is in progress, SIGKILL rank 1 then. Returns 1 when the kill landed
# after that save was committed (a legal outcome, just not the one under test).
attempt() {
  dir=$1
  train 2 "$dir" "${big[@]}" >"$dir.out" 2>&1 &
  local launcher=$! pid="" partial i rc=0
  killed=""
  wait_step "$dir" 5
  pid=$(rank_pid "$dir" 1)
  for ((i = 0; i < 3000; i++)); do # up to ~60 s
    partial=$(ls "$dir"/checkpoints/*.partial 2>/dev/null | head -1 || true)
    if [[ -f $dir/checkpoints/latest && -n $partial ]]; then
      kill -9 "$pid" && killed=$partial
      break
    fi
    sleep 0.01
  done
  wait "$launcher" || rc=$?
  cat "$dir.out"
  [[ -n $killed ]] || { echo "never caught a save in progress" >&2; exit 1; }
  ((rc != 0)) || { echo "the job exited 0 after a rank was killed" >&2; exit 1; }
  [[ ! -f ${killed%.partial} ]] # committed before the kill arrived?
}
for try in 1 2 3; do
  attempt "$work/crash$try" && break
  echo "the kill arrived after the save committed; again"
  ((try < 3)) || { echo "could not interrupt a save in 3 attempts" >&2; exit 1; }
done
echo "killed rank 1 while writing $killed"
latest=$(cat "$dir/checkpoints/latest")
[[ -f $dir/checkpoints/$latest ]] || { echo "latest names a missing file: $latest" >&2; exit 1; }
step=$(sed 's/step-0*\([0-9][0-9]*\)\.h5/\1/' <<<"$latest")
partial_step=$(basename "$killed" | sed 's/step-0*\([0-9][0-9]*\)\.h5\.partial/\1/')
((partial_step > step)) || { echo "partial step $partial_step <= latest $step" >&2; exit 1; }
[[ ! -f $dir/checkpoints/$(basename "$killed" .partial) ]] || { echo "the killed save was committed" >&2; exit 1; }

train 2 "$dir" "${big[@]}" train.steps=$((step + 5)) run.resume=auto 2>&1 | tee "$work/out2.txt"
grep -q "resumed from .*$latest: step $step," "$work/out2.txt"
grep -q "removed .*\.partial, left by an interrupted checkpoint" "$work/out2.txt"
! compgen -G "$dir/checkpoints/*.partial" >/dev/null
echo "ok: save interrupted at step $partial_step; resumed from step $step"
