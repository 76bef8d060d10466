#!/usr/bin/env bash
# Hugging Face GPT-2 round trips without PyPI (the transformers checks are
# test_hf_transformers.sh): folders written by hand (hf_fixture.py: numpy, no torch) are imported
# bit for bit from F32, F16 and BF16, with GPT2LMHeadModel's "transformer." names, lm_head and
# old attn.bias buffers (ignored, counted); every refusal exits 2 naming what is wrong (a missing
# tensor with its expected shape, a wrong shape with both, an untied head, another activation,
# epsilon or MLP width, a bare .safetensors without --n-head, an occupied OUT_DIR); the export
# writes a config.json that reads back as the model's GPT2Config (the MLP: no config.json);
# `ckpt inspect` catches a dataset rewritten with another shape; `cohort generate` runs an import;
# run.init_from starts from the imported weights at step 0, refuses a mismatched model naming
# each key with both values, and yields to a checkpoint run.resume finds.
# Usage: test_hf_import.sh COHORT SOURCE_DIR PYTHON MPIEXEC [MPIEXEC_FLAGS...]
set -euo pipefail
cohort=$1 src=$2 py=$3 mpiexec=$4
shift 4
flags=("$@")
here=$(cd "$(dirname "$0")" && pwd)
"$py" -c "import h5py, numpy" 2>/dev/null || { echo "skip: $py lacks h5py/numpy"; exit 77; }
work=$(mktemp -d /tmp/cohort-hf-XXXXXX)
trap 'rm -rf "$work"' EXIT

fail() { echo "FAIL: $*"; exit 1; }
# expect RC PATTERN CMD...: runs CMD, checks its exit status and that its output has PATTERN.
expect() {
  local want=$1 pat=$2 rc=0
  shift 2
  "$@" > "$work/out.txt" 2>&1 || rc=$?
  cat "$work/out.txt"
  [ "$rc" -eq "$want" ] || fail "'$*' exited $rc, expected $want"
  grep -qF -- "$pat" "$work/out.txt" || fail "'$*': no '$pat' in its output"
}
fixture() { "$py" "$here/hf_fixture.py" "$@"; }
# same CKPT_DIR FIXTURE_DIR: the imported /model tensors equal the fixture's values bit for bit.
same() {
  "$py" - "$1" "$2/reference.npz" <<'PY'
import sys, h5py, numpy as np
ref = np.load(sys.argv[2])
with h5py.File(f"{sys.argv[1]}/step-00000000.h5", "r") as f:
    got = {n: d[...] for n, d in f["model"].items()}
    assert f.attrs["step"] == 0 and "optim" not in f, "not a step-0 checkpoint without /optim"
assert sorted(got) == sorted(ref.files), sorted(set(got) ^ set(ref.files))
for n in ref.files:
    assert got[n].shape == ref[n].shape and got[n].tobytes() == ref[n].tobytes(), n
print(f"ok: {len(got)} tensors imported bit for bit")
PY
}

# Imports that work: F32 with GPT2LMHeadModel's names and buffers, F16, BF16, a bare file.
fixture "$work/f32" --prefix --buffers
expect 0 "4 other tensors ignored" "$cohort" ckpt import "$work/f32" "$work/i32"
same "$work/i32" "$work/f32"
[ "$(cat "$work/i32/latest")" = step-00000000.h5 ] || fail "latest"
fixture "$work/f16" --dtype F16
expect 0 "tokenizer byte" "$cohort" ckpt import "$work/f16" "$work/i16"
same "$work/i16" "$work/f16"
fixture "$work/bf16" --dtype BF16 --prefix
expect 0 "28 tensors" "$cohort" ckpt import "$work/bf16/model.safetensors" "$work/ibf16"
same "$work/ibf16" "$work/bf16"
fixture "$work/bare" --no-config --heads 4 --layers 3
expect 2 "give --n-head N" "$cohort" ckpt import "$work/bare/model.safetensors" "$work/ibare"
[ ! -e "$work/ibare" ] || fail "a refused import left $work/ibare"
expect 0 "n_layer 3, n_head 4, n_embd 16, context 8" \
  "$cohort" ckpt import "$work/bare/model.safetensors" "$work/ibare" --n-head 4
same "$work/ibare" "$work/bare"

# Refusals: exit 2, naming the tensor, key or value.
expect 2 "already holds 1 checkpoint" "$cohort" ckpt import "$work/f32" "$work/i32"
fixture "$work/e1" --drop h.1.mlp.c_fc.bias
expect 2 "tensor h.1.mlp.c_fc.bias is missing (expected shape [64] from the config)" \
  "$cohort" ckpt import "$work/e1" "$work/o1"
fixture "$work/e2" --prefix --shape h.0.attn.c_attn.weight=16,47
expect 2 "tensor transformer.h.0.attn.c_attn.weight has shape [16, 47]; the config needs [16, 48]" \
  "$cohort" ckpt import "$work/e2" "$work/o2"
fixture "$work/e3" --untied
expect 2 "lm_head.weight differs from wte.weight in 1 of 4096 elements" \
  "$cohort" ckpt import "$work/e3" "$work/o3"
fixture "$work/e4" --set 'activation_function="relu"'
expect 2 'activation_function "relu" is not supported' "$cohort" ckpt import "$work/e4" "$work/o4"
fixture "$work/e5" --set layer_norm_epsilon=1e-6
expect 2 "layer_norm_epsilon 1e-06 is not supported: cohort's GPT uses 1e-05" \
  "$cohort" ckpt import "$work/e5" "$work/o5"
fixture "$work/e6" --set n_inner=32
expect 2 "n_inner is 32" "$cohort" ckpt import "$work/e6" "$work/o6"
fixture "$work/e7" --set 'model_type="llama"'
expect 2 'model_type is "llama", not "gpt2"' "$cohort" ckpt import "$work/e7" "$work/o7"
fixture "$work/e8" --set tie_word_embeddings=false
expect 2 "tie_word_embeddings is false but there is no lm_head.weight" \
  "$cohort" ckpt import "$work/e8" "$work/o8"
expect 2 "expected byte or gpt2" "$cohort" ckpt import "$work/f32" "$work/o9" --tokenizer bpe
for o in o1 o2 o3 o4 o5 o6 o7 o8 o9; do [ ! -e "$work/$o" ] || fail "a refused import left $o"; done

# Export: config.json beside model.safetensors (a directory, or OUT.safetensors), read back.
expect 0 "GPT2Config" "$cohort" ckpt export "$work/i32" "$work/hf"
mkdir "$work/flat"
expect 0 "GPT2Config" "$cohort" ckpt export "$work/i32" "$work/flat/m.safetensors"
"$py" - "$work/hf" "$work/flat" "$work/f32/reference.npz" <<'PY'
import json, struct, sys, numpy as np
for d in sys.argv[1:3]:
    c = json.load(open(f"{d}/config.json"))
    want = {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "n_layer": 2, "n_head": 2,
            "n_embd": 16, "n_positions": 8, "n_ctx": 8, "vocab_size": 256, "n_inner": None,
            "activation_function": "gelu_new", "layer_norm_epsilon": 1e-05,
            "tie_word_embeddings": True, "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0,
            "bos_token_id": None, "eos_token_id": None}
    bad = {k: (c.get(k), v) for k, v in want.items() if c.get(k) != v}
    assert not bad, bad
ref = np.load(sys.argv[3])
raw = open(f"{sys.argv[1]}/model.safetensors", "rb").read()
(n,) = struct.unpack("<Q", raw[:8])
hdr = json.loads(raw[8:8 + n])
for name in ref.files:
    b, e = hdr[name]["data_offsets"]
    assert raw[8 + n + b:8 + n + e] == ref[name].tobytes(), name
print("ok: config.json is the GPT2Config; model.safetensors round-trips bit for bit")
PY

# inspect: a /model dataset rewritten with another shape (its crc32 recomputed, so only the
# shape is wrong) is a MISMATCH, exit 1.
cp -r "$work/i32" "$work/bad"
"$py" - "$work/bad/step-00000000.h5" <<'PY'
import sys, zlib, h5py, numpy as np
with h5py.File(sys.argv[1], "r+") as f:
    x = f["model/ln_f.bias"][...][:15].copy()
    del f["model/ln_f.bias"]
    d = f.create_dataset("model/ln_f.bias", data=x.astype("<f4"))
    d.attrs["crc32"] = np.uint32(zlib.crc32(x.astype("<f4").tobytes()))
PY
expect 1 "MISMATCH shape (the model needs [16])" "$cohort" ckpt inspect "$work/bad"
grep -q "dataset /model/ln_f.bias has shape \[15\]; the stored model needs \[16\]" "$work/out.txt" ||
  fail "inspect did not name the mismatched dataset"
expect 0 "all checksums ok" "$cohort" ckpt inspect "$work/i32"

# The MLP: export writes the safetensors only.
"$cohort" data csv "$src/examples/digits/digits.csv.gz" "$work/digits.h5" --val-fraction 0.2 \
  --seed 0 > /dev/null
"$mpiexec" -n 1 "${flags[@]}" "$cohort" train "$src/configs/mlp-digits.yaml" \
  data.path="$work/digits.h5" run.dir="$work/mlp" train.steps=2 optim.warmup_steps=0 \
  run.checkpoint.every=2 > /dev/null
expect 0 "the MLP has no Hugging Face config" "$cohort" ckpt export "$work/mlp/checkpoints" "$work/mlpx"
[ -f "$work/mlpx/model.safetensors" ] && [ ! -e "$work/mlpx/config.json" ] || fail "MLP export"

# run.init_from: byte-level text, a model of the fixture's shape.
"$cohort" data text "$src/examples/shakespeare/input.txt.gz" "$work/text.h5" --val-fraction 0.1 \
  > /dev/null
# An import that names its token data serves and generates as it is; one that does not needs --data.
expect 0 "tokenizer byte" "$cohort" ckpt import "$work/f32" "$work/withdata" --data "$work/text.h5"
"$cohort" generate "$work/withdata" --prompt "ab" --max-tokens 5 --temperature 0 > "$work/g1.txt"
"$cohort" generate "$work/i32" --prompt "ab" --max-tokens 5 --temperature 0 --data "$work/text.h5" \
  > "$work/g2.txt"
cmp "$work/g1.txt" "$work/g2.txt" && [ "$(wc -c < "$work/g1.txt")" -eq 8 ] || fail "generate"
train() {
  "$mpiexec" -n 2 "${flags[@]}" "$cohort" train "$src/configs/gpt-tiny.yaml" \
    data.path="$work/text.h5" model.n_layer=2 model.n_head=2 model.n_embd=16 model.context=8 \
    train.batch_size=4 train.log_every=1 optim.warmup_steps=0 optim.min_lr=0 "$@"
}
expect 2 "model.n_embd 16 (checkpoint) vs 32 (this run), model.context 8 (checkpoint) vs 16" \
  train run.dir="$work/mm" train.steps=1 model.n_embd=32 model.context=16 \
  run.init_from="$work/i32"
# A learning rate too small to move a weight: after 1 step the parameters are the imported ones
# (within 1e-6 of them) and the run counts from step 0.
expect 0 "run.init_from: model weights of $work/i32/step-00000000.h5" \
  train run.dir="$work/ft" train.steps=1 optim.lr=1e-12 run.checkpoint.every=1 \
  run.init_from="$work/i32" parallel.strategy=zero2
"$py" - "$work/ft" "$work/f32/reference.npz" <<'PY'
import json, sys, h5py, numpy as np
ref = np.load(sys.argv[2])
with h5py.File(f"{sys.argv[1]}/checkpoints/step-00000001.h5", "r") as f:
    assert f.attrs["step"] == 1 and f.attrs["optim_steps"] == 1, dict(f.attrs)
    for n in ref.files:
        assert np.abs(f["model"][n][...] - ref[n]).max() <= 1e-6, n
rows = [json.loads(l) for l in open(f"{sys.argv[1]}/metrics.jsonl")]
assert [r["step"] for r in rows] == [1], rows
print("ok: init_from started from the imported weights at step 0")
PY
# Restarted with run.resume=auto, the run's own checkpoint wins over run.init_from.
expect 0 "run.init_from=$work/i32 not used: the run resumed from its own checkpoint (step 1)" \
  train run.dir="$work/ft" train.steps=2 optim.lr=1e-12 run.resume=auto run.init_from="$work/i32"
echo PASS
