#!/usr/bin/env bash
# Serving edge cases, each once a bug:
#   - a GPT whose model.vocab_size pads the tokenizer's (300 > 256 bytes), its padded head rows
#     made the most likely (so any unmasked sampler picks them): `cohort generate` and
#     /v1/completions (greedy, temperature, top-k, top-p) never draw a padded id (every token
#     is one byte of the text, the text equals generate's), V2's next_token is a real token;
#   - a reload of the other family's checkpoint is refused (400, JSON, naming the family) both
#     ways, and the old model keeps serving under its name (/v1/models, metadata) (it used to
#     be accepted: the next completion crashed the job; then refused with 409, now 400 as
#     issue 12 asks);
#   - a V2 infer on the GPT counts as accepted and answered: SIGTERM right after it stops at
#     once with "1 request(s) accepted, 1 answered in full" (it used to wait 10 s, 0 answered);
#   - cohort_queue_duration_seconds is observed on a GPT server;
#   - a streamed completion whose state cannot be allocated (test hook
#     COHORT_TEST_FAIL_ALLOC=stream) gets a 500 JSON error and its request is freed;
#   - the V2 model metadata of each family (its schema, ch_model_io): names, datatypes, shapes;
#   - SIGTERM reaching rank 1 after rank 0's server stopped (as across nodes): every rank
#     exits 0 (a late signal used to kill a rank in MPI_Finalize, mpirun exiting 143).
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
"$cohort" data csv "$src/examples/digits/digits.csv.gz" "$work/digits.h5" --val-fraction 0.2 > /dev/null
"$mpiexec" -n 1 "${flags[@]}" "$cohort" train "$src/configs/gpt-tiny.yaml" \
  data.path="$work/text.h5" run.dir="$work/gpt" model.n_layer=1 model.n_embd=64 model.context=48 \
  model.vocab_size=300 train.steps=100 train.batch_size=16 train.log_every=50 train.eval_every=0 \
  optim.warmup_steps=10 run.checkpoint.every=100 > "$work/gpt.txt"
"$mpiexec" -n 1 "${flags[@]}" "$cohort" train "$src/configs/mlp-digits.yaml" \
  data.path="$work/digits.h5" run.dir="$work/mlp" train.steps=20 run.checkpoint.every=20 \
  train.eval_every=0 optim.warmup_steps=5 > "$work/mlp.txt"
gck="$work/gpt/checkpoints" mck="$work/mlp/checkpoints"
# The padded rows of the tied head (ids 256..299) become +-100 e_k: their logits dwarf the real
# ones at every position. The tensor's CRC-32 attribute follows the edit.
"$py" - "$gck" <<'PY'
import glob, sys, zlib
import h5py, numpy as np
path = sorted(glob.glob(f"{sys.argv[1]}/step-*.h5"))[-1]
with h5py.File(path, "r+") as f:
    d = next(f["model"][k] for k in f["model"] if "wte" in k)
    w = d[...]
    assert w.shape[0] == 300, w.shape
    for j in range(256, 300):
        w[j] = 0
        w[j, (j - 256) // 2] = 100.0 if j % 2 else -100.0
    d[...] = w
    d.attrs["crc32"] = np.uint32(zlib.crc32(np.ascontiguousarray(w, dtype="<f4").tobytes()))
PY

# --- padded vocabulary: cohort generate ---
prompt="ROMEO:"
modes=("--temperature 0" "--temperature 0.7 --seed 3" "--temperature 1 --top-k 20 --seed 4"
       "--temperature 1 --top-p 0.8 --seed 5")
i=0
for m in "${modes[@]}"; do
  # shellcheck disable=SC2086
  if "$cohort" generate "$gck" --prompt "$prompt" --max-tokens 24 $m > "$work/gen$i.txt" 2> "$work/gen$i.err" &&
     [ "$(wc -c < "$work/gen$i.txt")" -eq $((${#prompt} + 24 + 1)) ]; then :
  else fail "generate $m on a padded vocabulary: $(tail -1 "$work/gen$i.err")"; fi
  i=$((i + 1))
done

# --- the GPT server (2 ranks) ---
start gpt 2 "$gck" --model-name tiny --max-batch-size 4 --model-repository "$work"
"$py" - "$gpt_port" "$work" "$prompt" > "$work/gpt_checks.txt" 2>&1 <<'PY' || fail "completions on a padded vocabulary: $(tail -3 "$work/gpt_checks.txt")"
import json, sys, urllib.request
port, work, prompt = sys.argv[1:4]
def post(path, body):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(),
                                 method="POST")
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read().decode("utf-8", "surrogateescape"))
modes = [{"temperature": 0}, {"temperature": 0.7, "seed": 3}, {"temperature": 1, "top_k": 20, "seed": 4},
         {"temperature": 1, "top_p": 0.8, "seed": 5}]
for i, m in enumerate(modes):
    r = post("/v1/completions", dict(model="tiny", prompt=prompt, max_tokens=24, **m))
    text = r["choices"][0]["text"].encode("utf-8", "surrogateescape")
    n = r["usage"]["completion_tokens"]
    assert n == 24 and len(text) == n, (m, n, len(text), text)  # one byte per token
    gen = open(f"{work}/gen{i}.txt", "rb").read()[len(prompt):-1]
    assert text == gen, (m, text, gen)
ids = list(prompt.encode())
r = post("/v2/models/tiny/infer", {"inputs": [{"name": "input_ids", "shape": [len(ids)],
                                                "datatype": "INT32", "data": ids}]})
o = {t["name"]: t["data"] for t in r["outputs"]}
assert len(o["logits"]) == 300 and o["next_token"][0] < 256, o["next_token"]
print("padded vocabulary: completions and V2 draw real tokens only")
PY
cat "$work/gpt_checks.txt"
base="http://127.0.0.1:$gpt_port"
curl -s "$base/metrics" > "$work/metrics"
grep -Eq '^cohort_queue_duration_seconds_count\{model="tiny",version="[0-9]+"\} [1-9]' "$work/metrics" ||
  fail "cohort_queue_duration_seconds not observed on a GPT server"

# --- the V2 schema of each family (the MLP's below) ---
meta() { # meta PORT MODEL EXPECTED: the metadata's platform, inputs and outputs
  curl -s "localhost:$1/v2/models/$2" | "$py" -c "
import json, sys
d = json.load(sys.stdin)
got = [d['platform']] + [(t['name'], t['datatype'], t['shape']) for t in d['inputs'] + d['outputs']]
assert repr(got) == sys.argv[1], (got, sys.argv[1])" "$3"
}
meta "$gpt_port" tiny "['cohort_gpt', ('input_ids', 'INT32', [-1]), ('logits', 'FP32', [300]), ('next_token', 'INT32', [1])]" ||
  fail "GPT metadata"

# --- a reload of the other family: refused, the old model serving ---
code=$(curl -s -o "$work/body" -w "%{http_code}" -X POST "$base/v2/repository/models/tiny/load" \
  -d "{\"parameters\":{\"path\":\"$mck\"}}")
[ "$code" = 400 ] && grep -q '"error".*holds an MLP' "$work/body" || fail "GPT server loading an MLP: $code $(cat "$work/body")"
curl -s "$base/v1/models" | grep -q '"id":"tiny"' || fail "/v1/models after a refused reload: $(curl -s "$base/v1/models")"
code=$(curl -s -o "$work/body" -w "%{http_code}" -X POST "$base/v1/completions" \
  -d '{"model": "tiny", "prompt": "ROMEO:", "max_tokens": 4}')
[ "$code" = 200 ] || fail "completion after a refused reload: $code $(cat "$work/body")"

# --- a stream whose state cannot be allocated: 500 JSON, nothing leaked ---
export COHORT_TEST_FAIL_ALLOC=stream
start nomem 1 "$gck" --model-name tiny
unset COHORT_TEST_FAIL_ALLOC
code=$(curl -s -o "$work/body" -w "%{http_code}" -X POST "localhost:$nomem_port/v1/completions" \
  -d '{"model": "tiny", "prompt": "ROMEO:", "max_tokens": 4, "stream": true}' || true)
[ "$code" = 500 ] && grep -q '"error"' "$work/body" || fail "stream state allocation failure: status $code"
stop nomem
grep -q "never freed" "$work/nomem.log" && fail "requests leaked: $(grep 'never freed' "$work/nomem.log")"

# --- V2 on the GPT, then SIGTERM: accepted and answered, no 10 s drain ---
start v2 1 "$gck" --model-name tiny
curl -s -X POST "localhost:$v2_port/v2/models/tiny/infer" \
  -d '{"inputs":[{"name":"input_ids","shape":[3],"datatype":"INT32","data":[65,66,67]}]}' > /dev/null
t0=$(date +%s.%N)
stop v2
took=$("$py" -c "import time; print(f'{time.time() - $t0:.1f}')")
grep -q "1 request(s) accepted, 1 answered in full" "$work/v2.log" && "$py" -c "import sys; sys.exit($took >= 5)" ||
  fail "SIGTERM after a V2 infer on a GPT: ${took} s, $(grep 'accepted' "$work/v2.log")"

# --- SIGTERM to rank 0, then to rank 1 once rank 0's server has stopped ---
rank_of() { tr '\0' '\n' < "/proc/$1/environ" 2>/dev/null | sed -n 's/^\(OMPI_COMM_WORLD_RANK\|PMI_RANK\)=//p' | head -1; }
r0="" r1=""
for p in $(ranks_of gpt); do
  case "$(rank_of "$p")" in 0) r0=$p ;; 1) r1=$p ;; esac
done
[ -n "$r0" ] && [ -n "$r1" ] || fail "cannot tell the GPT server's ranks apart"
kill -TERM "$r0"
for _ in $(seq 1 500); do grep -q "server stopped" "$work/gpt.log" && break; sleep 0.01; done
kill -TERM "$r1" 2>/dev/null || true
rc=0
wait "$gpt_pid" || rc=$?
[ "$rc" -eq 0 ] || fail "SIGTERM to rank 1 after rank 0 stopped: mpiexec exited $rc"

# --- an MLP server told to load the GPT: refused, still serving (last: it used to crash) ---
start mlp 1 "$mck" --model-repository "$work"
base="http://127.0.0.1:$mlp_port"
meta "$mlp_port" mlp "['cohort_mlp', ('input', 'FP32', [-1, 64]), ('logits', 'FP32', [-1, 10]), ('label', 'INT32', [-1])]" ||
  fail "MLP metadata"
code=$(curl -s -o "$work/body" -w "%{http_code}" -X POST "$base/v2/repository/models/mlp/load" \
  -d "{\"parameters\":{\"path\":\"$gck\"}}")
[ "$code" = 400 ] && grep -q '"error".*holds a GPT' "$work/body" || fail "MLP server loading a GPT: $code $(cat "$work/body")"
curl -s "$base/v1/models" | grep -q '"id":"mlp"' || fail "/v1/models after a refused reload: $(curl -s "$base/v1/models")"
code=$(curl -s -o "$work/body" -w "%{http_code}" -X POST "$base/v1/completions" \
  -d '{"model": "mlp", "prompt": "hi", "max_tokens": 2}' || true)
[ "$code" = 400 ] || fail "completions on the MLP server after the refused reload: $code"
row=$("$py" -c "print(','.join(['0.5']*64))")
code=$(curl -s -o "$work/body" -w "%{http_code}" -X POST "$base/v2/models/mlp/infer" \
  -d "{\"inputs\":[{\"name\":\"input\",\"shape\":[1,64],\"datatype\":\"FP32\",\"data\":[$row]}]}" || true)
[ "$code" = 200 ] || fail "MLP infer after the refused reload: $code"
kill -TERM $(ranks_of mlp) 2>/dev/null || true
rc=0
wait "$mlp_pid" || rc=$?
[ "$rc" -eq 0 ] || fail "the MLP server exited $rc"

[ "$fails" -eq 0 ] || { echo "$fails check(s) failed"; exit 1; }
echo PASS
