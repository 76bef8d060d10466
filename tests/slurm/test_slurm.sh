#!/usr/bin/env bash
# Train through Slurm on a private single-node cluster:
#   1. srun -n 2 cohort train ...            (what a user types in an allocation)
#   2. sbatch --wait -n 2 launchers/train.sbatch ...   (the batch template)
# and check each run's exit status, its metrics.jsonl, and that the two ranks formed one
# world of size 2 (a wrong PMI plugin gives two singletons of size 1 that both "succeed").
#
#   test_slurm.sh COHORT_BINARY SOURCE_DIR
#
# Exit status: 0 pass, 1 fail, 77 skipped (no Slurm/munge, not root, or no usable PMI).
# Environment: COHORT_TEST_SLURM_PORT  slurmctld port (slurmd port+1)  [a free one]
#              COHORT_TEST_KEEP=1      keep the scratch directory even when the test passes
set -uo pipefail

cohort=${1:?usage: test_slurm.sh COHORT_BINARY SOURCE_DIR}
src=${2:?usage: test_slurm.sh COHORT_BINARY SOURCE_DIR}

fail() { echo "FAIL: $*" >&2; exit 1; }
skip() { echo "SKIP: $*" >&2; exit 77; }
note() { echo "-- $*"; }

[[ -x $cohort ]] || fail "no cohort binary at '$cohort'"
[[ -d $src/launchers ]] || fail "'$src' is not the cohort source tree"
PATH=$PATH:/usr/sbin:/sbin
for tool in srun sbatch scontrol slurmctld slurmd munged; do
  command -v "$tool" >/dev/null 2>&1 || skip "$tool is not installed (apt-get install slurm-wlm munge)"
done
[[ $(id -u) == 0 ]] || skip "the private Slurm cluster runs its daemons as root; not root here"

# A test run from inside a real Slurm job must not talk to that job's cluster.
unset "${!SLURM_@}"

# srun's PMI plugin must match the MPI cohort was linked with: Debian's Open MPI works only
# with pmix (pmi2 and none fail), Debian's MPICH only with pmi2 (pmix and none give
# singletons). Which plugins Slurm has is asked once it runs.
mpi_kind=openmpi
if "$cohort" version 2>&1 | grep -q MPICH || ldd "$cohort" 2>/dev/null | grep -q libmpich; then
  mpi_kind=mpich
fi

# Short path: the munge socket lives in it, and unix socket paths are limited to 107 bytes.
tmp=$(mktemp -d /tmp/cohort-slurm-test.XXXXXX) || fail "mktemp failed"
export COHORT_SLURM_DIR=$tmp/slurm

cleanup() {
  local rc=$?
  "$src/launchers/slurm-local-stop.sh" >"$tmp/stop.out" 2>&1 || {
    echo "slurm-local-stop.sh failed:" >&2
    cat "$tmp/stop.out" >&2
    ((rc)) || rc=1
  }
  if ((rc != 0 && rc != 77)); then
    local f
    for f in "$tmp"/*.out "$COHORT_SLURM_DIR"/slurmctld.log "$COHORT_SLURM_DIR"/slurmd.log; do
      [[ -f $f ]] || continue
      echo "==== tail of $f" >&2
      tail -n 30 "$f" >&2
    done
    echo "scratch directory kept: $tmp" >&2
  elif [[ ${COHORT_TEST_KEEP:-0} == 1 ]]; then
    echo "scratch directory kept: $tmp"
  else
    rm -rf "$tmp"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 143' TERM INT HUP # run cleanup (and stop the daemons) when ctest times out

# A port pair no socket uses, so the test does not collide with a cluster already running
# (launchers/slurm-local-start.sh's default is 16817) or with a second test run; below the
# kernel's ephemeral range (ip_local_port_range, 32768 up by default), whose ports client
# connections take and leave in TIME_WAIT (the serving load test makes ~10^5 of them).
port_free() { ! ss -Htan "( sport = :$1 or sport = :$(($1 + 1)) )" 2>/dev/null | grep -q .; }
port=${COHORT_TEST_SLURM_PORT:-}
if [[ -z $port ]]; then
  low=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
  span=$(( (low > 21000 ? low - 21000 : 10000) / 2 ))
  for _ in $(seq 50); do
    port=$((20000 + RANDOM % span * 2))
    port_free "$port" && break
  done
fi
note "starting private Slurm in $COHORT_SLURM_DIR on ports $port/$((port + 1)); cohort uses $mpi_kind"
COHORT_SLURM_PORT=$port COHORT_SLURM_FIRST_JOB_ID=$((port * 10)) \
  "$src/launchers/slurm-local-start.sh" >"$tmp/start.out" 2>&1
rc=$?
((rc == 77)) && skip "$(cat "$tmp/start.out")"
((rc == 0)) || fail "launchers/slurm-local-start.sh exited $rc"
export SLURM_CONF=$COHORT_SLURM_DIR/slurm.conf
grep -qxF "export SLURM_CONF=$SLURM_CONF" "$COHORT_SLURM_DIR/env.sh" || fail "env.sh does not export SLURM_CONF"
plugins=$(srun --mpi=list 2>&1 | tr -s '\n ' ' ')
if [[ $mpi_kind == mpich ]]; then
  srun_mpi=pmi2
  [[ $plugins == *pmi2* ]] || skip "cohort is built with MPICH, which needs srun --mpi=pmi2; Slurm here lacks pmi2 (srun --mpi=list: $plugins)"
else
  srun_mpi=pmix
  [[ $plugins == *pmix* ]] || skip "srun --mpi=pmix is not available (srun --mpi=list: $plugins); install libpmix-dev"
fi


csv=$src/examples/digits/digits.csv.gz
[[ -f $csv ]] || csv=/usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz
[[ -f $csv ]] || fail "no digits.csv.gz in $src/examples/digits or from python3-sklearn"
"$cohort" data csv "$csv" "$tmp/digits.h5" >"$tmp/data.out" 2>&1 || fail "cohort data csv $csv failed"
config=$src/configs/mlp-digits.yaml
[[ -f $config ]] || fail "no $config"

# Every rank logs "rank R/N on HOST ..." at debug level; with all ranks logging, the output
# shows whether the ranks formed one world.
export COHORT_LOG=debug COHORT_LOG_RANKS=all

# check_run NAME RUN_DIR OUTPUT: the run wrote metrics, and both ranks were in one world.
check_run() {
  local name=$1 dir=$2 out=$3 lines
  [[ -s $dir/metrics.jsonl ]] || fail "$name: no $dir/metrics.jsonl (or it is empty)"
  lines=$(grep -c . "$dir/metrics.jsonl")
  ((lines > 0)) || fail "$name: metrics.jsonl has no lines"
  # One JSON object a line, steps increasing: two singleton rank 0s appending to the same
  # file would repeat steps.
  if [[ -x /usr/bin/python3 ]]; then
    /usr/bin/python3 - "$dir/metrics.jsonl" <<'PY' || fail "$name: bad metrics.jsonl"
import json, sys
last = None
for n, line in enumerate(open(sys.argv[1]), 1):
    rec = json.loads(line)
    assert isinstance(rec, dict), f"line {n} is not a JSON object"
    step = rec.get("step")
    if step is not None:
        assert last is None or step > last, f"line {n}: step {step} after {last}"
        last = step
PY
  fi
  if ! grep -q 'rank 0/2 ' "$out" || ! grep -q 'rank 1/2 ' "$out"; then
    fail "$name: expected 'rank 0/2' and 'rank 1/2' in the ranks' debug log (a world of 2)"
  fi
  ! grep -q 'rank 0/1 ' "$out" || fail "$name: ranks started as singletons (world size 1)"
  note "$name: ok, $lines lines in metrics.jsonl, world size 2"
}

note "srun --mpi=$srun_mpi -n 2 cohort train"
timeout -k 10 100 srun --mpi="$srun_mpi" -n 2 --time=2 --job-name=cohort-test-srun \
  "$cohort" train "$config" train.steps=30 train.log_every=10 "data.path=$tmp/digits.h5" "run.dir=$tmp/srun" \
  >"$tmp/srun.out" 2>&1
rc=$?
((rc == 0)) || fail "srun exited $rc (see $tmp/srun.out)"
check_run srun "$tmp/srun" "$tmp/srun.out"

note "sbatch --wait -n 2 launchers/train.sbatch"
COHORT_BIN=$cohort COHORT_CONFIG=$config COHORT_SRUN_MPI=$srun_mpi \
  timeout -k 10 120 sbatch --wait --parsable -n 2 --time=2 --job-name=cohort-test-sbatch \
  --chdir="$tmp" --output="$tmp/sbatch.out" "$src/launchers/train.sbatch" \
  train.steps=30 train.log_every=10 "data.path=$tmp/digits.h5" "run.dir=$tmp/sbatch" >"$tmp/sbatch.id" 2>"$tmp/sbatch.err"
rc=$?
job=$(head -n1 "$tmp/sbatch.id")
((rc == 0)) || fail "sbatch --wait exited $rc (job '${job}'; $(cat "$tmp/sbatch.err"))"
[[ $job =~ ^[0-9]+$ ]] || fail "sbatch printed no job id"
state=$(scontrol show job "$job" 2>/dev/null | grep -o 'JobState=[A-Z_]*\|ExitCode=[0-9:]*' | tr '\n' ' ')
[[ -z $state || $state == "JobState=COMPLETED ExitCode=0:0 " ]] || fail "job $job: $state"
check_run sbatch "$tmp/sbatch" "$tmp/sbatch.out"

# Preemption the way Slurm does it: SIGUSR1 to the batch shell (what --signal=B:USR1@120 sends
# before a time limit), forwarded by the template to srun and the ranks, which checkpoint and
# exit 0; resubmitting the same job resumes from that checkpoint (the template passes
# run.resume=auto).
note "sbatch, then scancel --batch --signal=USR1: checkpoint, exit 0, resume"
long=(model.hidden=512 model.depth=3 train.steps=100000 train.log_every=5
      "data.path=$tmp/digits.h5" "run.dir=$tmp/preempt")
job=$(COHORT_BIN=$cohort COHORT_CONFIG=$config COHORT_SRUN_MPI=$srun_mpi   sbatch --parsable -n 2 --time=3 --job-name=cohort-test-preempt --chdir="$tmp"   --output="$tmp/preempt.out" "$src/launchers/train.sbatch" "${long[@]}" 2>"$tmp/sbatch.err")
[[ $job =~ ^[0-9]+$ ]] || fail "sbatch printed no job id ($(cat "$tmp/sbatch.err"))"
for _ in $(seq 600); do
  grep -q '"step": 10,' "$tmp/preempt/metrics.jsonl" 2>/dev/null && break
  sleep 0.1
done
grep -q '"step": 10,' "$tmp/preempt/metrics.jsonl" 2>/dev/null || fail "job $job never reached step 10"
scancel --batch --signal=USR1 "$job" || fail "scancel --signal=USR1 $job failed"
for _ in $(seq 600); do
  state=$(scontrol show job "$job" 2>/dev/null | grep -o 'JobState=[A-Z_]*')
  [[ $state == JobState=RUNNING || $state == JobState=COMPLETING ]] || break
  sleep 0.1
done
state=$(scontrol show job "$job" 2>/dev/null | grep -o 'JobState=[A-Z_]*\|ExitCode=[0-9:]*' | tr '\n' ' ')
[[ -z $state || $state == "JobState=COMPLETED ExitCode=0:0 " ]] || fail "preempted job $job: $state"
step=$(sed -n 's/.*stopping on SIGUSR1: checkpoint of step \([0-9]*\).*/\1/p' "$tmp/preempt.out" | head -1)
[[ -n $step ]] || fail "no 'stopping on SIGUSR1' line in $tmp/preempt.out"
# +25 steps: the config's optim.warmup_steps (20) must stay <= train.steps even when a slow
# (sanitizer) build is preempted right after step 10.
COHORT_BIN=$cohort COHORT_CONFIG=$config COHORT_SRUN_MPI=$srun_mpi \
  timeout -k 10 120 sbatch --wait --parsable -n 2 --time=2 --job-name=cohort-test-resume \
  --chdir="$tmp" --output="$tmp/resume.out" "$src/launchers/train.sbatch" "${long[@]}" \
  train.steps=$((step + 25)) >/dev/null 2>"$tmp/sbatch.err" || fail "resume job failed"
grep -q "resumed from .*step-$(printf %08d "$step").h5: step $step," "$tmp/resume.out" ||
  fail "the resubmitted job did not resume from step $step"
note "preemption: stopped at step $step with a checkpoint, resumed"
note "PASS"
