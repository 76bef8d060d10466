#!/usr/bin/env bash
# Resume on another host count: mlp-digits (zero3) trains 20 steps on 3 hosts x 1 rank, then
# resumes in the same run dir (run.resume=auto) to step 40 on 2 hosts x 2 ranks. Its
# metrics.jsonl and step-40 checkpoint equal an uninterrupted 40-step run of 4 ranks on one host
# within 1e-3 relative, the reshard tolerance of tests/ckpt/test_resume.sh (3 and 4 ranks sum
# gradients in another order; observed there <= 3e-5).
# Usage: test_resume.sh COHORT SOURCE_DIR MPIEXEC [MPIEXEC_FLAGS...]
source "$(dirname "$0")/lib.sh"
cluster_up 3

args=(train "$src/configs/mlp-digits.yaml" data.path="$(digits)" optim.schedule=constant
      optim.warmup_steps=5 train.log_every=10 train.eval_every=20 run.checkpoint.every=20
      parallel.strategy=zero3)
hmpirun 1 3 "$cohort" "${args[@]}" train.steps=20 run.dir="$work/cut" >"$work/cut1.txt" 2>&1
hmpirun 2 2 "$cohort" "${args[@]}" train.steps=40 run.dir="$work/cut" run.resume=auto >"$work/cut2.txt" 2>&1
grep -q "resumed from .*step-00000020.h5: step 20" "$work/cut2.txt" || { echo "FAIL: did not resume at step 20"; exit 1; }
grep -q "written by 3 rank" "$work/cut2.txt" || { echo "FAIL: resume does not say 3 ranks wrote it"; exit 1; }
lmpirun 4 "$cohort" "${args[@]}" train.steps=40 run.dir="$work/full" >"$work/full.txt" 2>&1
same_run "$work/cut" "$work/full" 40 1e-3
echo "PASS: 20 steps on 3x1 + resume to 40 on 2x2 equal 40 steps on one host"
