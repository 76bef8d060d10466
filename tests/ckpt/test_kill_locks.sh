#!/usr/bin/env bash
# A job killed (SIGKILL) while its dataset is open and checkpoints are being saved leaves no
# MPI-IO lock files (*.lock, *.locktest.*) beside the data or checkpoint files. Open MPI's ompio
# makes them through its "lockedfile" shared-file-pointer component, which it picks when the
# ranks span nodes; here the "sm" component's priority is set to 0 so one machine makes the
# same choice. Control: a user's own OMPI_MCA_sharedfp=lockedfile still wins (and the lock file
# is then seen), which also shows that this test can see one. MPICH has no ompio: the
# default case must simply pass.
source "$(dirname "$0")/lib.sh"
export OMPI_MCA_sharedfp_sm_priority=0

# killed RUN_DIR: trains in the background, kills rank 1 at step >= 12 (checkpoints every 3
# steps, so a save is often under way), waits for the launcher to end the job.
killed() {
  train 2 "$1" train.steps=100000 run.checkpoint.every=3 train.log_every=1 >"$1.txt" 2>&1 &
  local launcher=$!
  wait_step "$1" 12
  locks_during=$(find "$work" \( -name '*.lock' -o -name '*.locktest.*' \) | wc -l)
  kill -9 "$(rank_pid "$1" 1)"
  wait "$launcher" && { cat "$1.txt"; echo "the job did not fail" >&2; exit 1; }
  locks_after=$(find "$work" \( -name '*.lock' -o -name '*.locktest.*' \) | wc -l)
}

killed "$work/default"
find "$work" \( -name '*.lock' -o -name '*.locktest.*' \)
((locks_during == 0)) || { echo "lock files while running: $locks_during" >&2; exit 1; }
((locks_after == 0)) || { echo "lock files after the kill: $locks_after" >&2; exit 1; }
ls "$work/default/checkpoints" | grep -q '^step-.*\.h5$' || { echo "no checkpoint" >&2; exit 1; }

if "$mpiexec" --version 2>&1 | grep -q "Open MPI"; then
  OMPI_MCA_sharedfp=lockedfile killed "$work/user"
  ((locks_during > 0)) || { echo "control: OMPI_MCA_sharedfp=lockedfile made no lock file" >&2; exit 1; }
  find "$work" \( -name '*.lock' -o -name '*.locktest.*' \) -delete
fi
echo "ok: a killed job leaves no MPI-IO lock files"
