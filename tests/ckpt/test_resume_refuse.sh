#!/usr/bin/env bash
# A run never destroys checkpoints it did not write. Before, run.resume=auto with every
# checkpoint unreadable warned "starting fresh", exited 0, overwrote them and retention deleted
# the rest. Now:
#   1. run.resume=auto, none readable: refused (non-zero exit) naming the files and the
#      override; the files are untouched;
#   2. run.resume=none (the default) over a directory holding checkpoints: refused likewise;
#   3. run.resume=never starts fresh deliberately, and retention (keep_last=1) deletes only the
#      new run's files: the earlier run's are kept, which is said once.
source "$(dirname "$0")/lib.sh"
run=$work/run
train 2 "$run" train.steps=40 >/dev/null
sums() { (cd "$run/checkpoints" && md5sum step-*.h5); }
# Unreadable: a flipped byte in the middle of each file (data or metadata).
for f in "$run"/checkpoints/step-*.h5; do
  "$py" -c "import sys; p = sys.argv[1]; b = bytearray(open(p, 'rb').read()); b[len(b) // 2] ^= 0xff; open(p, 'wb').write(b)" "$f"
done
before=$(sums)

# refused NAME [overrides]: the run exits non-zero naming both files and run.resume=never, and
# leaves the checkpoints as they were.
refused() {
  local name=$1 rc=0
  shift
  train 2 "$run" train.steps=60 "$@" >"$work/$name.txt" 2>&1 || rc=$?
  cat "$work/$name.txt"
  ((rc != 0)) || { echo "$name: exited 0" >&2; exit 1; }
  grep -q "holds 2 checkpoints (step-00000040.h5, step-00000020.h5).*refusing to start fresh over them.*run.resume=never" "$work/$name.txt"
  ! grep -q "starting fresh" "$work/$name.txt"
  [[ $(sums) == "$before" ]] || { echo "$name: the checkpoints changed" >&2; exit 1; }
}
refused auto run.resume=auto
grep -q "none of them readable" "$work/auto.txt"
refused none
grep -q "run.resume=none would start fresh" "$work/none.txt"

# Deliberately fresh, saving at steps 30, 60, 90 with keep_last=1: 30 and 60 are pruned, the
# earlier run's 20 and 40 are not.
train 2 "$run" train.steps=90 run.resume=never run.checkpoint.every=30 run.checkpoint.keep_last=1 \
  >"$work/never.txt" 2>&1 || { cat "$work/never.txt"; exit 1; }
cat "$work/never.txt"
grep -q "run.resume=never: starting fresh in $run/checkpoints, which holds 2 checkpoints" "$work/never.txt"
[[ $(grep -c "retention: 2 checkpoints in $run/checkpoints were not written by this run and are kept" "$work/never.txt") == 1 ]]
left=$(cd "$run/checkpoints" && echo step-*.h5)
[[ $left == "step-00000020.h5 step-00000040.h5 step-00000090.h5" ]] || { echo "left: $left" >&2; exit 1; }
[[ $(cd "$run/checkpoints" && md5sum step-00000020.h5 step-00000040.h5) == "$before" ]]
echo "ok: unreadable checkpoints are refused, never overwritten or pruned"
