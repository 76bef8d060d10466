#!/usr/bin/env bash
# `taskset -c 1 mpiexec -n 1 cohort train` stays on CPU 1 and says so in OS ids (before: bound
# to cores 0-1, printed as hwloc's logical numbers); under taskset -c 0,1 two ranks get disjoint
# CPUs inside {0,1}; in a cgroup cpuset of CPU 1 the same as under taskset. Each rank prints "cpus LIST (...) of inherited LIST" with --verbose.
# Usage: cli_train_binding.sh COHORT SOURCE_DIR MPIEXEC [MPIEXEC_FLAGS...]
set -uo pipefail
cohort=$1 src=$2 mpiexec=$3
shift 3
flags=("$@")
dir=$(mktemp -d /tmp/cohort-binding-XXXXXX) || exit 1
trap 'rm -rf "$dir"' EXIT
. "$src/tests/data/lib.sh" # fail
taskset -c 0,1 true 2>/dev/null || { echo "skip: needs CPUs 0 and 1"; exit 77; }
"$cohort" data csv "$src/examples/digits/digits.csv.gz" "$dir/digits.h5" --val-fraction 0.2 \
  --seed 0 >/dev/null || fail "data csv"

# run CPUS N: `taskset -c CPUS mpiexec -n N cohort train -v`, output in $dir/out.txt.
run() {
  timeout 90 taskset -c "$1" "$mpiexec" -n "$2" "${flags[@]}" "$cohort" train -v \
    "$src/configs/mlp-digits.yaml" data.path="$dir/digits.h5" run.dir="$dir/run$2" \
    train.steps=5 optim.warmup_steps=1 >"$dir/out.txt" 2>&1 || { cat "$dir/out.txt"; fail "train under taskset -c $1"; }
  grep -E "cpus .* of inherited" "$dir/out.txt"
}

run 1 1
grep -q "rank 0/1 on .*: cpus 1 (1 core) of inherited 1$" "$dir/out.txt" || fail "taskset -c 1: not cpus 1"

run 0,1 2
c0=$(sed -nE 's/.*rank 0\/2 on .*: cpus ([0-9,-]+) .*/\1/p' "$dir/out.txt")
c1=$(sed -nE 's/.*rank 1\/2 on .*: cpus ([0-9,-]+) .*/\1/p' "$dir/out.txt")
[ -n "$c0" ] && [ -n "$c1" ] || fail "taskset -c 0,1: no cpus lines"
[ "$c0" != "$c1" ] || fail "taskset -c 0,1: both ranks on cpus $c0"
for c in "$c0" "$c1"; do [[ $c == 0 || $c == 1 ]] || fail "taskset -c 0,1: cpus $c"; done
# A cgroup cpuset of CPU 1 (cgroup v1's cpuset hierarchy or v2 with the cpuset controller),
# where one can be made (root, a writable hierarchy); otherwise this part is skipped.
cg=
for base in /sys/fs/cgroup/cpuset /sys/fs/cgroup; do
  [ -w "$base" ] && [ -e "$base/cpuset.cpus" -o -e "$base/cgroup.subtree_control" ] || continue
  [ "$base" = /sys/fs/cgroup ] && ! grep -qw cpuset "$base/cgroup.subtree_control" 2>/dev/null && continue
  d=$base/cohort-binding-$$
  if mkdir "$d" 2>/dev/null; then
    if echo 1 >"$d/cpuset.cpus" 2>/dev/null && { [ ! -e "$d/cpuset.mems" ] || echo 0 >"$d/cpuset.mems"; } 2>/dev/null; then
      cg=$d
      break
    fi
    rmdir "$d"
  fi
done
if [ -n "$cg" ]; then
  trap 'rmdir "$cg" 2>/dev/null; rm -rf "$dir"' EXIT
  procs=$cg/cgroup.procs
  timeout 90 sh -c 'echo $$ >"$0" && exec "$@"' "$procs" "$mpiexec" -n 1 "${flags[@]}" \
    "$cohort" train -v "$src/configs/mlp-digits.yaml" data.path="$dir/digits.h5" \
    run.dir="$dir/runcg" train.steps=5 optim.warmup_steps=1 >"$dir/out.txt" 2>&1 ||
    { cat "$dir/out.txt"; fail "train in a cgroup cpuset"; }
  grep -E "cpus .* of inherited" "$dir/out.txt"
  grep -q "rank 0/1 on .*: cpus 1 (1 core) of inherited 1$" "$dir/out.txt" || fail "cgroup: not cpus 1"
else
  echo "cgroup cpuset part skipped: no writable cpuset hierarchy"
fi
echo "ok: binding stays inside the inherited affinity, printed in OS ids"
