#!/usr/bin/env bash
# run.dir (or run.checkpoint.dir) that is not the same directory on every rank: the job stops
# at start, within seconds, exit 2, with one message naming the rank, its host and the path
# (before: a hang at the first checkpoint until the watchdog fired). One machine stands in for
# two nodes: an MPMD launch whose rank 1 runs in its own mount namespace (`unshare -m`) with a
# tmpfs over the directory, so it sees an empty directory where rank 0 wrote its token.
# Also: a shared directory passes and the token is removed. Skipped (77) where unshare or mount
# is not allowed (not root, no CAP_SYS_ADMIN).
# Usage: cli_train_shared_dir.sh COHORT SOURCE_DIR MPIEXEC [MPIEXEC_FLAGS...]
set -uo pipefail
cohort=$1 src=$2 mpiexec=$3
shift 3
flags=("$@")
dir=$(mktemp -d /tmp/cohort-shared-XXXXXX) || exit 1
trap 'rm -rf "$dir"' EXIT
. "$src/tests/data/lib.sh" # fail

mkdir -p "$dir/local" "$dir/probe"
if ! unshare -m sh -c "mount -t tmpfs none '$dir/probe'" 2>/dev/null; then
  echo "skip: unshare -m / mount -t tmpfs not allowed here"
  exit 77
fi
"$cohort" data csv "$src/examples/digits/digits.csv.gz" "$dir/digits.h5" --val-fraction 0.2 \
  --seed 0 >/dev/null || fail "data csv"
host=$(hostname)

# split NAME ARGS...: rank 0 plain, rank 1 with a private tmpfs over $dir/local. Without the
# check the job would hang at the step-50 checkpoint until the watchdog (300 s): `timeout 60`
# would end it with 124, not 2. The bound leaves room for sanitizer builds on a loaded VM.
split() {
  local name=$1
  shift
  local args=("$src/configs/mlp-digits.yaml" data.path="$dir/digits.h5" train.steps=200
              run.checkpoint.every=50 "$@")
  local start=$SECONDS
  timeout 60 "$mpiexec" "${flags[@]}" -n 1 "$cohort" train "${args[@]}" : \
    -n 1 unshare -m sh -c "mount -t tmpfs none '$dir/local' && exec \"\$0\" \"\$@\"" \
    "$cohort" train "${args[@]}" >"$dir/$name.txt" 2>&1
  got=$? took=$((SECONDS - start))
  cat "$dir/$name.txt"
  echo "$name: exit $got after $took s"
  [ "$got" -eq 2 ] || fail "$name: exit $got, expected 2"
  ((took <= 45)) || fail "$name: took $took s"
}

split rundir run.dir="$dir/local/run"
grep -q "run.dir $dir/local/run is not shared: rank 1 on host $host does not see the file rank 0 wrote there" \
  "$dir/rundir.txt" || fail "rundir: message"
grep -q "put run.dir on a filesystem every node mounts" "$dir/rundir.txt" || fail "rundir: hint"
[ -z "$(ls -A "$dir/local/run")" ] || fail "rundir: the token was left behind"

split ckptdir run.dir="$dir/run" run.checkpoint.dir="$dir/local/ck"
grep -q "run.checkpoint.dir $dir/local/ck is not shared: rank 1 on host $host" \
  "$dir/ckptdir.txt" || fail "ckptdir: message"

# A shared directory passes on 2 ranks and no token stays behind.
timeout 60 "$mpiexec" -n 2 "${flags[@]}" "$cohort" train "$src/configs/mlp-digits.yaml" \
  data.path="$dir/digits.h5" run.dir="$dir/ok" train.steps=20 optim.warmup_steps=5 \
  >"$dir/ok.txt" 2>&1 || { cat "$dir/ok.txt"; fail "shared run.dir: training failed"; }
ls -A "$dir/ok" "$dir/ok/checkpoints" | grep -q '^\.cohort-shared' && fail "shared: token left"
echo "ok: an unshared run.dir / checkpoint dir stops the job at start naming rank, host and path"
