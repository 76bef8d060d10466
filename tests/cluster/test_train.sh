#!/usr/bin/env bash
# Training across namespace hosts equals training on one host with the same global batch and
# the same number of ranks: mlp-digits on 3 hosts x 1 rank and 2 hosts x 2 ranks, gpt-tiny (2
# layers, context 32) on 3 hosts x 1 rank, each with ddp and zero3; the losses and other
# numbers in metrics.jsonl and every tensor of the final checkpoint within TOL (lib.sh).
# Also: the ranks do run on 3 hosts (3 distinct hostnames from the same launch).
# Usage: test_train.sh COHORT SOURCE_DIR MPIEXEC [MPIEXEC_FLAGS...]
source "$(dirname "$0")/lib.sh"
cluster_up 3
[[ $(hmpirun 1 3 hostname | sort -u | wc -l) == 3 ]] || { echo "FAIL: ranks not on 3 hosts"; exit 1; }

mlp=(train "$src/configs/mlp-digits.yaml" data.path="$(digits)" train.steps=40 train.log_every=10
     train.eval_every=40 run.checkpoint.every=40)
gpt=(train "$src/configs/gpt-tiny.yaml" data.path="$(text)" model.n_layer=2 model.n_head=2
     model.n_embd=48 model.context=32 train.steps=8 train.batch_size=12 train.log_every=2
     train.eval_every=8 optim.warmup_steps=2 optim.eps=1e-6 run.checkpoint.every=8)

# case NAME RANKS_PER_HOST NHOSTS STEPS MODEL_ARGS...
case_() {
  local name=$1 r=$2 n=$3 steps=$4
  shift 4
  echo "== $name: $n hosts x $r vs 1 host x $((r * n))"
  hmpirun "$r" "$n" "$cohort" "$@" run.dir="$work/$name-hosts" >"$work/$name-hosts.txt" 2>&1
  lmpirun $((r * n)) "$cohort" "$@" run.dir="$work/$name-one" >"$work/$name-one.txt" 2>&1
  same_run "$work/$name-hosts" "$work/$name-one" "$steps" "$TOL"
}
for s in ddp zero3; do
  case_ "mlp-3x1-$s" 1 3 40 "${mlp[@]}" parallel.strategy=$s
  case_ "mlp-2x2-$s" 2 2 40 "${mlp[@]}" parallel.strategy=$s
  case_ "gpt-3x1-$s" 1 3 8 "${gpt[@]}" parallel.strategy=$s
done
echo "PASS: mlp-digits 3x1 and 2x2, gpt-tiny 3x1, ddp and zero3, equal to one host"
