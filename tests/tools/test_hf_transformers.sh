#!/usr/bin/env bash
# Hugging Face round trips against transformers itself (4.46.3 from PyPI in a cached venv over
# Debian's torch 1.13; skips with 77 when pip cannot install it):
#   (a) a GPT trained by cohort, exported to a folder: GPT2LMHeadModel.from_pretrained loads it
#       with no missing or unexpected keys, and its next-token logits equal those cohort's server
#       answers (KServe V2) for prompts of 1 to 32 tokens (hf_logits.py states the tolerance);
#   (b) a random GPT2LMHeadModel saved by save_pretrained (fp32, and fp16), `cohort ckpt import`ed
#       and served on 2 ranks (heads split), answers HF's logits;
#   (c) training with run.init_from=the import starts at step 0 and its loss falls.
# Usage: test_hf_transformers.sh COHORT SOURCE_DIR MPIEXEC [MPIEXEC_FLAGS...]
set -euo pipefail
cohort=$1 src=$2 mpiexec=$3
shift 3
flags=("$@")
here=$(cd "$(dirname "$0")" && pwd)
. "$src/tests/serve/lib.sh"
. "$src/tests/serve/client_venv.sh"
serve_init hf
CLIENT_VENV_SYSTEM_SITE=1 client_venv "${COHORT_VENV_DIR:-$work}" "transformers==4.46.3" ||
  { echo "SKIP: no transformers from PyPI"; exit 77; }
hf() { "$venv/bin/python" "$here/hf_logits.py" "$@" 2> >(grep -v Warning >&2); }
"$venv/bin/python" -c "import torch, transformers" 2>/dev/null ||
  { echo "SKIP: the venv cannot import torch and transformers"; exit 77; }

"$cohort" data text "$src/examples/shakespeare/input.txt.gz" "$work/text.h5" --val-fraction 0.1 \
  > /dev/null
train() {
  "$mpiexec" -n 2 "${flags[@]}" "$cohort" train "$src/configs/gpt-tiny.yaml" \
    data.path="$work/text.h5" model.n_layer=2 model.n_head=4 model.n_embd=64 model.context=32 \
    train.batch_size=8 optim.warmup_steps=2 "$@"
}

# (a) cohort -> Hugging Face.
train run.dir="$work/run" train.steps=30 train.log_every=10 run.checkpoint.every=30 > /dev/null
"$cohort" ckpt export "$work/run/checkpoints" "$work/exported"
hf load "$work/exported"
start trained 1 "$work/run/checkpoints" --model-name tiny
hf compare "$work/exported" "$trained_port"
stop trained

# (b) Hugging Face -> cohort, fp32 and fp16.
for prec in fp32 fp16; do
  opt=()
  [ $prec = fp16 ] && opt=(--fp16)
  hf make "$work/hf-$prec" "${opt[@]}"
  "$cohort" ckpt import "$work/hf-$prec" "$work/imported-$prec" --data "$work/text.h5"
  "$cohort" ckpt inspect "$work/imported-$prec" > /dev/null
  start "imp$prec" 2 "$work/imported-$prec" --model-name tiny
  port_var=imp${prec}_port
  hf compare "$work/hf-$prec" "${!port_var}" "${opt[@]}"
  stop "imp$prec"
done

# (c) Fine-tuning the import: from step 0, the loss falls.
train run.dir="$work/ft" train.steps=40 train.log_every=10 optim.lr=3e-3 \
  run.init_from="$work/imported-fp32" > "$work/ft.txt"
grep -q "run.init_from: model weights of $work/imported-fp32/step-00000000.h5" "$work/ft.txt"
"$py" - "$work/ft/metrics.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert [r["step"] for r in rows] == [10, 20, 30, 40], rows
assert rows[-1]["loss"] < rows[0]["loss"] - 0.5, "loss did not fall"
print(f"ok: fine-tuning the import from step 0: loss {rows[0]['loss']:.3f} -> {rows[-1]['loss']:.3f}")
PY
echo PASS
