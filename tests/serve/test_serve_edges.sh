#!/usr/bin/env bash
# Serving edge cases, each once a bug:
#   - a V2 infer on the GPT counts as accepted and answered: SIGTERM right after it stops at
#     once with "1 request(s) accepted, 1 answered in full" (it used to wait 10 s, 0 answered);
# Usage: test_serve_edges.sh COHORT SOURCE_DIR MPIEXEC [MPIEXEC_FLAGS...]
set -euo pipefail
cohort=$1 src=$2 mpiexec=$3
shift 3
flags=("$@")
. "$(dirname "$0")/lib.sh"
serve_init edges
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

"$cohort" data text "$src/examples/shakespeare/input.txt.gz" "$work/text.h5" > /dev/null
"$mpiexec" -n 1 "${flags[@]}" "$cohort" train "$src/configs/gpt-tiny.yaml" \
  data.path="$work/text.h5" run.dir="$work/gpt" model.n_layer=1 model.n_embd=64 model.context=48 \
  model.vocab_size=300 train.steps=100 train.batch_size=16 train.log_every=50 train.eval_every=0 \
  optim.warmup_steps=10 run.checkpoint.every=100 > "$work/gpt.txt"
gck="$work/gpt/checkpoints" mck="$work/mlp/checkpoints"
# --- V2 on the GPT, then SIGTERM: accepted and answered, no 10 s drain ---
start v2 1 "$gck" --model-name tiny
curl -s -X POST "localhost:$v2_port/v2/models/tiny/infer" \
  -d '{"inputs":[{"name":"input_ids","shape":[3],"datatype":"INT32","data":[65,66,67]}]}' > /dev/null
t0=$(date +%s.%N)
stop v2
took=$("$py" -c "import time; print(f'{time.time() - $t0:.1f}')")
grep -q "1 request(s) accepted, 1 answered in full" "$work/v2.log" && "$py" -c "import sys; sys.exit($took >= 5)" ||
  fail "SIGTERM after a V2 infer on a GPT: ${took} s, $(grep 'accepted' "$work/v2.log")"

[ "$fails" -eq 0 ] || { echo "$fails check(s) failed"; exit 1; }
echo PASS
