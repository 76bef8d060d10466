#!/usr/bin/env bash
# Out of space: checkpoints go to a small tmpfs that fills up after a few saves. The job stops
# with a clear error naming the directory and the space needed, `latest` and the checkpoints
# already committed stay intact and resumable, and no partial file is left. Needs root to mount
# the tmpfs (skipped otherwise).
source "$(dirname "$0")/lib.sh"
mnt=$work/mnt
mkdir -p "$mnt"
if ! mount -t tmpfs -o size=1200k tmpfs "$mnt" 2>/dev/null; then
  echo "skipped: cannot mount a tmpfs here (needs root)"
  exit 77
fi
trap 'umount "$mnt" 2>/dev/null; rm -rf "$work"' EXIT
# Each checkpoint of the digits MLP is ~330 KiB: the third or fourth save does not fit.
rc=0
train 2 "$work/run" train.steps=200 run.checkpoint.dir="$mnt" run.checkpoint.keep_last=10 \
  >"$work/out.txt" 2>&1 || rc=$?
cat "$work/out.txt"
((rc != 0)) || { echo "the job succeeded although the disk filled up" >&2; exit 1; }
grep -q "not enough space for a checkpoint in $mnt: it needs about .* MiB, .* MiB are free" "$work/out.txt"
! compgen -G "$mnt/*.partial" >/dev/null
latest=$(cat "$mnt/latest")
step=$(sed 's/step-0*\([0-9][0-9]*\)\.h5/\1/' <<<"$latest")
((step >= 20)) || { echo "latest is $latest" >&2; exit 1; }
# The committed checkpoint resumes (checksums verified); no further save is attempted.
train 2 "$work/run" train.steps="$step" run.checkpoint.dir="$mnt" run.resume=auto 2>&1 | tee "$work/out2.txt"
grep -q "resumed from $mnt/$latest: step $step," "$work/out2.txt"
echo "ok: disk full reported; $latest intact and resumable"
