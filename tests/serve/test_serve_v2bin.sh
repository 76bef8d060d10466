#!/usr/bin/env bash
# Triton's binary tensor data and model configuration on a served MLP and GPT, with curl and
# bodies built by python's struct (v2bin_bodies.py):
#   - binary inputs (FP32 rows; INT64, INT32 and UINT16 token ids) give the same outputs, bit for
#     bit, as the same values sent as JSON; binary outputs (binary_data_output for all, or
#     binary_data per output) come as application/octet-stream with
#     Inference-Header-Content-Length, JSON outputs as before;
#   - a short body, a size that does not match the shape, bytes left over, a missing or wrong
#     header, NaN: 400 naming the problem;
#   - strict inputs: an unknown input name, FP64 for the MLP's FP32 (binary or JSON), FP32 token
#     ids: 400 naming the input; a GPT input of exactly the context length is answered, one more
#     token is a 400;
#   - GET /v2/models/{m}[/versions/{v}]/config: Triton's ModelConfig (max_batch_size and
#     dynamic_batching from the server's options for the MLP; 0 and dims [-1] for the GPT).
# Usage: test_serve_v2bin.sh COHORT SOURCE_DIR MPIEXEC [MPIEXEC_FLAGS...]
set -euo pipefail
cohort=$1 src=$2 mpiexec=$3
shift 3
flags=("$@")
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
serve_init v2bin
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

"$cohort" data csv "$src/examples/digits/digits.csv.gz" "$work/digits.h5" --val-fraction 0.2 > /dev/null
"$cohort" data text "$src/examples/shakespeare/input.txt.gz" "$work/text.h5" > /dev/null
"$mpiexec" -n 1 "${flags[@]}" "$cohort" train "$src/configs/mlp-digits.yaml" \
  data.path="$work/digits.h5" run.dir="$work/mlp" train.steps=20 run.checkpoint.every=20 \
  train.eval_every=0 optim.warmup_steps=5 > "$work/mlp.txt"
"$mpiexec" -n 1 "${flags[@]}" "$cohort" train "$src/configs/gpt-tiny.yaml" \
  data.path="$work/text.h5" run.dir="$work/gpt" model.n_layer=1 model.n_embd=64 model.context=48 \
  train.steps=20 train.batch_size=8 train.log_every=10 train.eval_every=0 optim.warmup_steps=5 \
  run.checkpoint.every=20 > "$work/gpt.txt"

start mlp 2 "$work/mlp/checkpoints" --model-name digits --max-batch-size 16 --max-queue-delay-us 700
start gpt 1 "$work/gpt/checkpoints" --model-name tiny
"$py" "$here/v2bin_bodies.py" "$work" mlp 64 0
vocab=$(curl -sf "localhost:$gpt_port/v2/models/tiny" |
        "$py" -c "import json,sys; print(json.load(sys.stdin)['outputs'][0]['shape'][0])")
"$py" "$here/v2bin_bodies.py" "$work" gpt 48 "$vocab"

# send NAME PORT MODEL: POSTs NAME.bin (with its header when NAME.hlen exists); the answer in
# NAME.out, its headers in NAME.hdr; checks the status and message of NAME.want.
send() {
  local name=$1 port=$2 model=$3 hdr=() got want msg
  [ -f "$work/$name.hlen" ] && hdr=(-H "Inference-Header-Content-Length: $(cat "$work/$name.hlen")")
  got=$(curl -s -o "$work/$name.out" -D "$work/$name.hdr" -w "%{http_code}" \
        -H "Content-Type: application/octet-stream" "${hdr[@]}" \
        --data-binary @"$work/$name.bin" "localhost:$port/v2/models/$model/infer")
  IFS=$'\t' read -r want msg < "$work/$name.want" || true
  if [ "$got" != "$want" ]; then
    fail "$name: status $got, expected $want: $(head -c 300 "$work/$name.out")"
  elif [ -n "$msg" ] && ! grep -qF -- "$msg" "$work/$name.out"; then
    fail "$name: the answer lacks '$msg': $(head -c 300 "$work/$name.out")"
  fi
}
for f in "$work"/mlp_*.bin; do send "$(basename "$f" .bin)" "$mlp_port" digits; done
for f in "$work"/gpt_*.bin; do send "$(basename "$f" .bin)" "$gpt_port" tiny; done

# Values: binary answers == JSON answers, bit for bit; headers as Triton sends them.
"$py" - "$work" <<'PY' || fail "binary answers differ from JSON answers"
import json, struct, sys
work = sys.argv[1]
def answer(name):
    """(headers, outputs by name as lists of numbers, whether each came binary)"""
    raw = open(f"{work}/{name}.out", "rb").read()
    hdr = {}
    for line in open(f"{work}/{name}.hdr", encoding="latin-1").read().splitlines()[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            hdr[k.strip().lower()] = v.strip()
    n = int(hdr.get("inference-header-content-length", len(raw)))
    head = json.loads(raw[:n])
    at, outs, binary = n, {}, {}
    for o in head["outputs"]:
        size = o.get("parameters", {}).get("binary_data_size")
        if size is None:
            outs[o["name"]] = [struct.unpack("<f", struct.pack("<f", v))[0] if o["datatype"] == "FP32"
                               else v for v in o["data"]]
            binary[o["name"]] = False
            continue
        fmt = {"FP32": "f", "INT32": "i"}[o["datatype"]]
        count = size // 4
        outs[o["name"]] = list(struct.unpack(f"<{count}{fmt}", raw[at:at + size]))
        at += size
        binary[o["name"]] = True
    assert at == len(raw), (name, at, len(raw))
    return hdr, outs, binary

def same(a, b, what):
    assert len(a) == len(b) and all(struct.pack("<f", x) == struct.pack("<f", y) if isinstance(x, float)
                                    else x == y for x, y in zip(a, b)), what

_, ref, _ = answer("mlp_json")
hdr, outs, binary = answer("mlp_bin_all")
assert hdr["content-type"] == "application/octet-stream" and "inference-header-content-length" in hdr, hdr
assert binary == {"logits": True, "label": True}, binary
same(outs["logits"], ref["logits"], "mlp logits (binary both ways)")
same(outs["label"], ref["label"], "mlp label")
hdr, outs, binary = answer("mlp_bin_in")
assert hdr["content-type"] == "application/json" and "inference-header-content-length" not in hdr, hdr
assert binary == {"logits": False, "label": False}, binary
same(outs["logits"], ref["logits"], "mlp logits (binary in, JSON out)")
_, ref3, _ = answer("mlp_json3")
hdr, outs, binary = answer("mlp_bin_label")
assert binary == {"label": True, "logits": False}, binary
same(outs["logits"], ref3["logits"], "3 rows: logits")
same(outs["label"], ref3["label"], "3 rows: labels")

_, gref, _ = answer("gpt_json")
for name in ("gpt_bin64", "gpt_bin32", "gpt_bin16"):
    hdr, outs, binary = answer(name)
    for k, v in outs.items():
        same(v, gref[k], f"{name}: {k}")
assert answer("gpt_bin64")[2] == {"logits": True, "next_token": True}
assert answer("gpt_bin32")[2] == {"next_token": True}
assert answer("gpt_bin16")[2] == {"logits": False}
_, outs, _ = answer("gpt_context")
assert len(outs["logits"]) > 0 and len(outs["next_token"]) == 1, outs.keys()
print("binary answers match JSON answers")
PY

# /config: Triton's ModelConfig, as perf_analyzer and tritonclient read it.
for path in /v2/models/digits/config /v2/models/digits/versions/20/config; do
  curl -sf "localhost:$mlp_port$path" > "$work/mlp_config.json" || fail "GET $path"
  "$py" - "$work/mlp_config.json" <<'PY' || fail "MLP config: $(head -c 400 "$work/mlp_config.json")"
import json, sys
c = json.load(open(sys.argv[1]))
assert c["name"] == "digits" and c["backend"] == "cohort" and c["platform"] == "cohort_mlp", c
assert c["max_batch_size"] == 16 and c["dynamic_batching"]["max_queue_delay_microseconds"] == 700, c
(i,) = c["input"]
assert i["name"] == "input" and i["data_type"] == "TYPE_FP32" and i["dims"] == [64], i
lo, la = c["output"]
assert lo["name"] == "logits" and lo["data_type"] == "TYPE_FP32" and lo["dims"] == [10], lo
assert la["name"] == "label" and la["data_type"] == "TYPE_INT32" and la["dims"] == [1] and \
       la["reshape"] == {"shape": []}, la
PY
done
curl -sf "localhost:$gpt_port/v2/models/tiny/config" > "$work/gpt_config.json" || fail "GET gpt config"
"$py" - "$work/gpt_config.json" "$vocab" <<'PY' || fail "GPT config: $(head -c 400 "$work/gpt_config.json")"
import json, sys
c, vocab = json.load(open(sys.argv[1])), int(sys.argv[2])
assert c["name"] == "tiny" and c["platform"] == "cohort_gpt" and c["max_batch_size"] == 0, c
assert "dynamic_batching" not in c, c
(i,) = c["input"]
assert i["name"] == "input_ids" and i["data_type"] == "TYPE_INT32" and i["dims"] == [-1], i
assert [(o["name"], o["dims"]) for o in c["output"]] == [("logits", [vocab]), ("next_token", [1])], c
PY
code=$(curl -s -o /dev/null -w "%{http_code}" "localhost:$mlp_port/v2/models/digits/versions/7/config")
[ "$code" = 404 ] || fail "config of an unknown version: $code"
code=$(curl -s -o /dev/null -w "%{http_code}" -X POST "localhost:$mlp_port/v2/models/digits/config")
[ "$code" = 404 ] || [ "$code" = 405 ] || fail "POST config: $code"

# Both servers still answer, then stop cleanly.
code=$(curl -s -o /dev/null -w "%{http_code}" "localhost:$mlp_port/v2/health/ready")
[ "$code" = 200 ] || fail "MLP server not ready after the bad requests: $code"
stop mlp
stop gpt
[ "$fails" -eq 0 ] || { echo "$fails check(s) failed"; exit 1; }
echo "serve_v2bin: ok"
