#!/usr/bin/env bash
# Serving on device=cuda against the CPU server (the emulated CUDA library in CI): the same
# checkpoints served on 2 ranks (tensor parallel, the sums over a NCCL group) on each device,
#   - the digits MLP: V2 logits of every validation row within 1e-4 of the CPU server's (fp32 on
#     both; GEMM summation order) and the same labels; `cohort infer --device cuda` writes the
#     same predictions;
#   - a small GPT: greedy completions of several prompts identical to the CPU server's, alone
#     and at once (batched decoding), and to `cohort generate --device cuda` (the KV cache on
#     the device);
#   - `cohort train ... device=cuda serve.after=true` serves what it trained on the device.
# Usage: test_cuda_serve.sh COHORT SOURCE_DIR CUDA_LIBRARY MPIEXEC [MPIEXEC_FLAGS...]
set -euo pipefail
cohort=$1 src=$2 lib=$3 mpiexec=$4
shift 4
flags=("$@")
export COHORT_CUDA_LIBRARY=$lib
case "$lib" in *_emu.so*) ;; *) nvidia-smi -L >/dev/null 2>&1 || { echo "no CUDA device: skipped"; exit 77; } ;; esac
# Ranks: 2 (the emulation has as many devices as asked); on a real node one per GPU, at most 2
# (cohort refuses more ranks than GPUs on a node), so a 1-GPU machine runs the 1-rank case.
ranks=2
case "$lib" in *_emu.so*) ;; *) [ "$(nvidia-smi -L | grep -c '^GPU')" -ge 2 ] || ranks=1 ;; esac
. "$src/tests/serve/lib.sh"
serve_init cuda

"$cohort" data csv "$src/examples/digits/digits.csv.gz" "$work/digits.h5" --val-fraction 0.2 \
  --seed 0 > /dev/null
"$mpiexec" -n "$ranks" "${flags[@]}" "$cohort" train "$src/configs/mlp-digits.yaml" \
  data.path="$work/digits.h5" run.dir="$work/mlp" train.steps=40 optim.warmup_steps=5 \
  > "$work/mlp.txt"
"$cohort" data text "$src/examples/shakespeare/input.txt.gz" "$work/text.h5" --val-fraction 0.1 \
  > /dev/null
"$mpiexec" -n "$ranks" "${flags[@]}" "$cohort" train "$src/configs/gpt-tiny.yaml" \
  data.path="$work/text.h5" run.dir="$work/gpt" model.n_layer=2 model.n_head=2 model.n_embd=32 \
  model.context=32 train.steps=60 train.batch_size=8 train.log_every=20 optim.warmup_steps=5 \
  > "$work/gpt.txt"

start mcpu "$ranks" "$work/mlp/checkpoints"
start mgpu "$ranks" "$work/mlp/checkpoints" --device cuda
grep -q "cuda" "$work/mgpu.log" || { echo "FAIL: the server did not say it runs on cuda"; exit 1; }
"$mpiexec" -n "$ranks" "${flags[@]}" "$cohort" infer "$work/mlp/checkpoints" "$work/digits.h5" \
  "$work/pred.h5" --device cuda > /dev/null
"$py" - "$work" "$mcpu_port" "$mgpu_port" <<'PY'
import json, sys, urllib.request
import h5py, numpy as np
work, pc, pg = sys.argv[1:4]
x = h5py.File(f"{work}/digits.h5", "r")["val/x"][...]
def infer(port):
    body = {"inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32",
                        "data": x.flatten().tolist()}]}
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v2/models/mlp/infer",
                                 data=json.dumps(body).encode(), method="POST")
    o = {t["name"]: np.array(t["data"]).reshape(t["shape"]) for t in json.load(urllib.request.urlopen(req))["outputs"]}
    return o["logits"], o["label"]
lc, yc = infer(pc)
lg, yg = infer(pg)
err = np.abs(lg - lc).max() / np.abs(lc).max()
print(f"mlp: {len(x)} rows, V2 logits cuda vs cpu max relative error {err:.2e} (tolerance 1e-4)")
assert err <= 1e-4 and (yc == yg).all(), (err, (yc != yg).sum())
p = h5py.File(f"{work}/pred.h5", "r")
assert np.abs(p["logits"][...] - lc).max() / np.abs(lc).max() <= 1e-4
assert (p["label"][...] == yc).all()
print("cohort infer --device cuda: same predictions")
PY
stop mcpu
stop mgpu

start gcpu "$ranks" "$work/gpt/checkpoints"
start ggpu "$ranks" "$work/gpt/checkpoints" --device cuda
prompts=("ROMEO:" "First Citizen:" "The king")
"$cohort" generate "$work/gpt/checkpoints" --prompt "ROMEO:" --max-tokens 24 --temperature 0 \
  --device cuda > "$work/gen_cuda.txt" 2>/dev/null
"$py" - "$gcpu_port" "$ggpu_port" "$work/gen_cuda.txt" "${prompts[@]}" <<'PY'
import json, sys, urllib.request
pc, pg, gen = sys.argv[1:4]
def complete(port, prompt):
    body = {"model": "gpt", "prompt": prompt, "max_tokens": 24, "temperature": 0}
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/completions",
                                 data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(req))["choices"][0]["text"]
cpu = {}
for prompt in sys.argv[4:]:
    a, b = complete(pc, prompt), complete(pg, prompt)
    assert a == b, (prompt, a, b)
    cpu[prompt] = a
    if prompt == "ROMEO:":
        g = open(gen).read()
        assert g.rstrip("\n") == prompt + a, (g, prompt + a)
# At once: the device decodes the sequences in one batched forward per step.
import threading
together = {}
threads = [threading.Thread(target=lambda p=p: together.__setitem__(p, complete(pg, p))) for p in cpu]
[t.start() for t in threads]
[t.join() for t in threads]
assert together == cpu, (together, cpu)
print(f"gpt: greedy completions of {len(sys.argv) - 4} prompts identical on cuda and cpu, and to cohort generate --device cuda")
PY
stop gcpu
stop ggpu

# Train on the device and serve from the same ranks.
"$mpiexec" -n "$ranks" "${flags[@]}" "$cohort" train "$src/configs/mlp-digits.yaml" \
  data.path="$work/digits.h5" run.dir="$work/after" train.steps=20 optim.warmup_steps=5 \
  device=cuda serve.after=true serve.port=0 > "$work/after.log" 2>&1 &
after_pid=$!
pids+=($after_pid)
for _ in $(seq 1 600); do grep -q "serving mlp" "$work/after.log" && break; sleep 0.1; done
after_port=$(sed -n 's/.*on http:\/\/127.0.0.1:\([0-9]*\) .*/\1/p' "$work/after.log")
[ -n "$after_port" ] || { echo "FAIL: serve.after did not start"; cat "$work/after.log"; exit 1; }
grep -q "on cuda" "$work/after.log" || { echo "FAIL: training did not run on cuda"; exit 1; }
base="http://127.0.0.1:$after_port"
row=$("$py" -c "import h5py; print(','.join(str(v) for v in h5py.File('$work/digits.h5','r')['val/x'][0]))")
check 200 POST /v2/models/mlp/infer -d "{\"inputs\":[{\"name\":\"input\",\"shape\":[1,64],\"datatype\":\"FP32\",\"data\":[$row]}]}"
exe=$(readlink -f "$cohort")
for p in $(pgrep -f -- "run.dir=$work/after"); do
  [ "$(readlink -f "/proc/$p/exe" 2>/dev/null)" = "$exe" ] && kill -TERM "$p"
done
rc=0
wait "$after_pid" || rc=$?
[ "$rc" -eq 0 ] || { echo "FAIL: serve.after exit $rc"; cat "$work/after.log"; exit 1; }
echo "ok: serving on cuda matches the CPU (V2 logits, greedy completions, infer, generate, serve.after)"
