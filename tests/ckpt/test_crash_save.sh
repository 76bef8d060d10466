#!/usr/bin/env bash
# A rank killed (SIGKILL) while a checkpoint is being written: the job ends non-zero, the
# previous checkpoint stays valid and `latest` names it, the half-written file is only ever a
# .partial; run.resume=auto resumes from the previous checkpoint (checksums verified) and the
# next save removes the leftover.
source "$(dirname "$0")/lib.sh"
# ~50 MiB checkpoints, written every 5 steps: each save takes a visible fraction of a second.
big=(model.hidden=1200 model.depth=4 train.steps=100000 run.checkpoint.every=5 train.log_every=5)
dir=$work/crash
train 2 "$dir" "${big[@]}" >"$work/out.txt" 2>&1 &
launcher=$!
killed=""
for ((i = 0; i < 3000; i++)); do # up to ~60 s
  if [[ -f $dir/checkpoints/latest ]] && compgen -G "$dir/checkpoints/*.partial" >/dev/null; then
    pid=$(rank_pid "$dir" 1) && kill -9 "$pid" && killed=$(ls "$dir"/checkpoints/*.partial) && break
  fi
  sleep 0.02
done
rc=0
wait "$launcher" || rc=$?
cat "$work/out.txt"
[[ -n $killed ]] || { echo "never caught a save in progress" >&2; exit 1; }
((rc != 0)) || { echo "the job exited 0 after a rank was killed" >&2; exit 1; }
echo "killed rank 1 while writing $killed; job exit status $rc"
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
