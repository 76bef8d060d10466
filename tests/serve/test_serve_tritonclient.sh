#!/usr/bin/env bash
# tritonclient[http] from PyPI, unmodified, against a served MLP and a GPT (the GPT behind
# --api-key): tritonclient_check.py (sync, async_infer and aio; binary and JSON both ways;
# get_model_config; error messages). Installs into a venv; skips (77) when PyPI is out of reach.
# Usage: test_serve_tritonclient.sh COHORT SOURCE_DIR MPIEXEC [MPIEXEC_FLAGS...]
set -euo pipefail
cohort=$1 src=$2 mpiexec=$3
shift 3
flags=("$@")
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
serve_init tritonclient

"$py" -m venv "$work/venv" > "$work/venv.log" 2>&1 ||
  { echo "SKIP: python3 -m venv failed: $(tail -1 "$work/venv.log")"; exit 77; }
if ! "$work/venv/bin/pip" install -q --disable-pip-version-check --timeout 30 \
     "tritonclient[http]" numpy > "$work/pip.log" 2>&1; then
  if grep -qiE "connection|resolve|network|timed out|No matching distribution" "$work/pip.log"; then
    echo "SKIP: PyPI is out of reach: $(tail -1 "$work/pip.log")"; exit 77
  fi
  echo "FAIL: pip install tritonclient[http]:"; cat "$work/pip.log"; exit 1
fi

"$cohort" data csv "$src/examples/digits/digits.csv.gz" "$work/digits.h5" --val-fraction 0.2 > /dev/null
"$cohort" data text "$src/examples/shakespeare/input.txt.gz" "$work/text.h5" > /dev/null
"$mpiexec" -n 1 "${flags[@]}" "$cohort" train "$src/configs/mlp-digits.yaml" \
  data.path="$work/digits.h5" run.dir="$work/mlp" train.steps=20 run.checkpoint.every=20 \
  train.eval_every=0 optim.warmup_steps=5 > "$work/mlp.txt"
"$mpiexec" -n 1 "${flags[@]}" "$cohort" train "$src/configs/gpt-tiny.yaml" \
  data.path="$work/text.h5" run.dir="$work/gpt" model.n_layer=1 model.n_embd=64 model.context=48 \
  train.steps=20 train.batch_size=8 train.log_every=10 train.eval_every=0 optim.warmup_steps=5 \
  run.checkpoint.every=20 > "$work/gpt.txt"

start mlp 2 "$work/mlp/checkpoints" --model-name digits --max-batch-size 16
start gpt 1 "$work/gpt/checkpoints" --model-name tiny --api-key s3cret
if ! "$work/venv/bin/python" "$here/tritonclient_check.py" "localhost:$mlp_port" digits \
     "localhost:$gpt_port" tiny s3cret > "$work/check.txt" 2>&1; then
  echo "FAIL: tritonclient:"; cat "$work/check.txt"; exit 1
fi
cat "$work/check.txt"
stop mlp
stop gpt
echo "serve_tritonclient: ok"
