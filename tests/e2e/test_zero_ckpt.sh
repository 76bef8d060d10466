#!/usr/bin/env bash
# Checkpoints do not depend on the strategy that wrote them: a GPT trained with zero3 on 4 ranks
# (shards per unit, 4 divides nothing in particular) writes the same logical tensors as ddp on 4
# ranks (within fp32 summation-order differences), and its step-10 checkpoint resumes with ddp
# on 1 rank and with zero1 on 3 ranks; both end at step 20 like the uninterrupted zero3 run.
# Tolerance 1e-4 relative (floor 1e-3): other rank counts sum in another order (~1e-7 per step),
# which AdamW (eps 1e-6, see tests/train/test_zero.c) keeps at ~1e-6 after 10 steps.
# Usage: test_zero_ckpt.sh COHORT SOURCE_DIR MPIEXEC [MPIEXEC_FLAGS...]
set -euo pipefail
cohort=$1 src=$2 mpiexec=$3
shift 3
flags=("$@")
work=$(mktemp -d /tmp/cohort-e2e-zero-XXXXXX)
trap 'rm -rf "$work"' EXIT
cmp=("/usr/bin/python3" "$src/tests/ckpt/compare.py")

"$cohort" data text "$src/examples/shakespeare/input.txt.gz" "$work/text.h5" --val-fraction 0.05 \
  > /dev/null
common=(data.path="$work/text.h5" model.n_layer=2 model.n_head=2 model.n_embd=48 model.context=32
        train.steps=20 train.batch_size=12 train.log_every=10 train.eval_every=0
        optim.warmup_steps=2 optim.eps=1e-6 run.checkpoint.every=10)
train() { # RANKS STRATEGY DIR [overrides...]
  local n=$1 s=$2 dir=$3
  shift 3
  "$mpiexec" -n "$n" "${flags[@]}" "$cohort" train "$src/configs/gpt-tiny.yaml" "${common[@]}" \
    parallel.strategy="$s" run.dir="$work/$dir" "$@" > "$work/$dir.txt"
}
train 4 zero3 z3
train 4 ddp ddp4
"${cmp[@]}" attr "$work/z3/checkpoints/step-00000010.h5" strategy zero3
"${cmp[@]}" attr "$work/z3/checkpoints/step-00000010.h5" world_size 4
# The same tensors (names, shapes, values) whichever strategy wrote them.
"${cmp[@]}" params "$work/z3/checkpoints/step-00000020.h5" "$work/ddp4/checkpoints/step-00000020.h5" 1e-4
# Resume zero3's step 10 elsewhere and compare step 20 with the uninterrupted zero3 run.
train 1 ddp ddp1 run.resume="$work/z3/checkpoints/step-00000010.h5"
grep -q "resumed from .*step-00000010.h5: step 10" "$work/ddp1.txt"
"${cmp[@]}" params "$work/ddp1/checkpoints/step-00000020.h5" "$work/z3/checkpoints/step-00000020.h5" 1e-4
train 3 zero1 z1r3 run.resume="$work/z3/checkpoints/step-00000010.h5"
"${cmp[@]}" params "$work/z1r3/checkpoints/step-00000020.h5" "$work/z3/checkpoints/step-00000020.h5" 1e-4
# And exactly: zero3 resumed on the same 4 ranks is bit-identical to its uninterrupted run.
train 4 zero3 z3r4 run.resume="$work/z3/checkpoints/step-00000010.h5"
"${cmp[@]}" params "$work/z3r4/checkpoints/step-00000020.h5" "$work/z3/checkpoints/step-00000020.h5"
tail -n 1 "$work/z3/metrics.jsonl" > "$work/z3-last.jsonl"
"${cmp[@]}" metrics "$work/z3-last.jsonl" "$work/z3r4/metrics.jsonl"
echo "ok: zero3 checkpoints resume under ddp on 1 rank and zero1 on 3"
