#!/usr/bin/env bash
# tritonclient[http] from PyPI, unmodified, in a venv (skips (77) when PyPI is out of reach):
#   - tritonclient_check.py against a served MLP and a GPT (the GPT behind --api-key): sync,
#     async_infer and aio; binary and JSON both ways; get_model_config; error messages;
#   - tritonclient_ext.py against an MLP server without and with --api-key: probes without the
#     key, /v2 extensions, the 401 message, request compression (gzip, deflate), statistics,
#     repository index / unload / load.
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
"$work/venv/bin/pip" list 2>/dev/null | grep -i "^tritonclient "

"$cohort" data text "$src/examples/shakespeare/input.txt.gz" "$work/text.h5" > /dev/null
mlp_checkpoint "$work/mlp"
"$mpiexec" -n 1 "${flags[@]}" "$cohort" train "$src/configs/gpt-tiny.yaml" \
  data.path="$work/text.h5" run.dir="$work/gpt" model.n_layer=1 model.n_embd=64 model.context=48 \
  train.steps=20 train.batch_size=8 train.log_every=10 train.eval_every=0 optim.warmup_steps=5 \
  run.checkpoint.every=20 > "$work/gpt.txt"

fails=0
start mlp 2 "$work/mlp/checkpoints" --model-name digits --max-batch-size 16
start gpt 1 "$work/gpt/checkpoints" --model-name tiny --api-key s3cret
if ! "$work/venv/bin/python" "$here/tritonclient_check.py" "localhost:$mlp_port" digits \
     "localhost:$gpt_port" tiny s3cret > "$work/check.txt" 2>&1; then
  echo "FAIL: tritonclient_check.py:"; fails=$((fails + 1))
fi
cat "$work/check.txt"
stop mlp
stop gpt

start open 1 "$work/mlp/checkpoints"
start keyed 1 "$work/mlp/checkpoints" --api-key s3cret
"$work/venv/bin/python" "$here/tritonclient_ext.py" "$open_port" "" || fails=$((fails + 1))
"$work/venv/bin/python" "$here/tritonclient_ext.py" "$keyed_port" s3cret || fails=$((fails + 1))
stop open
stop keyed
[ "$fails" -eq 0 ] || { echo "FAIL: $fails client run(s) failed"; exit 1; }
echo "serve_tritonclient: ok"
