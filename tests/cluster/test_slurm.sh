#!/usr/bin/env bash
# `srun --mpi=pmix -N 3` on a Slurm cluster with one slurmd per namespace host (slurm.sh):
# mlp-digits trained on 3 nodes x 1 task equals a 3-rank run on one host (TOL, lib.sh), the
# three tasks ran on three nodes, and they formed one world of 3 (a PMI mismatch gives three
# singletons that each "succeed"). Skipped (77) without Slurm or munge, or with an MPI other
# than Open MPI (Debian's MPICH needs pmi2, which this test does not set up).
# Usage: test_slurm.sh COHORT SOURCE_DIR MPIEXEC [MPIEXEC_FLAGS...]
source "$(dirname "$0")/lib.sh"
unset "${!SLURM_@}" # a test run inside a real job must not talk to that job's cluster
cluster_up 3
rc=0
cl slurm-up >"$work/slurm-up.txt" 2>&1 || rc=$?
cat "$work/slurm-up.txt"
((rc == 77)) && exit 77
((rc == 0)) || { echo "FAIL: slurm-up"; exit 1; }
eval "$(grep '^export SLURM_CONF=' "$work/slurm-up.txt")"

nodes=$(timeout 60 srun --mpi=pmix -N 3 -n 3 hostname | sort -u | tr '\n' ' ')
[[ $nodes == "cohortt-h1 cohortt-h2 cohortt-h3 " ]] || { echo "FAIL: tasks ran on '$nodes'"; exit 1; }

args=(train "$src/configs/mlp-digits.yaml" data.path="$(digits)" train.steps=40 train.log_every=10
      train.eval_every=40 run.checkpoint.every=40)
timeout 120 srun --mpi=pmix -N 3 -n 3 "$cohort" "${args[@]}" run.dir="$work/srun" >"$work/srun.txt" 2>&1 ||
  { echo "FAIL: srun exited $?"; exit 1; }
grep -q "3 ranks on cpu" "$work/srun.txt" || { echo "FAIL: the tasks did not form one world of 3"; exit 1; }
lmpirun 3 "$cohort" "${args[@]}" run.dir="$work/one" >"$work/one.txt" 2>&1
same_run "$work/srun" "$work/one" 40 "$TOL"
echo "PASS: srun --mpi=pmix -N 3 trains as one host does"
