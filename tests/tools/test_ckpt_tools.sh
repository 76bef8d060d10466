#!/usr/bin/env bash
# `cohort ckpt inspect|export` on checkpoints of real training runs (2 ranks relu, 3 ranks gelu):
# inspect lists every dataset with ok checksums and exits 0 (file or directory via `latest`);
# one flipped byte inside a dataset's data makes inspect exit 1 naming that dataset and export
# refuse the file without leaving output behind; the exported safetensors match the checkpoint
# bit for bit (safetensors_check.py); a torch MLP loaded from the checkpoint -- and from the
# safetensors -- reproduces the val_loss / val_acc cohort logged at each checkpoint's step
# (torch_val_loss.py); usage errors exit 2.
# Usage: test_ckpt_tools.sh COHORT SOURCE_DIR PYTHON MPIEXEC [MPIEXEC_FLAGS...]
set -euo pipefail
cohort=$1 src=$2 py=$3 mpiexec=$4
shift 4
flags=("$@")
here=$(cd "$(dirname "$0")" && pwd)
"$py" -c "import h5py, numpy, torch" 2>/dev/null || { echo "skip: $py lacks h5py/numpy/torch"; exit 77; }
work=$(mktemp -d /tmp/cohort-tools-XXXXXX)
trap 'rm -rf "$work"' EXIT

fail() { echo "FAIL: $*"; exit 1; }
# expect RC CMD...: runs CMD with output in $work/out.txt and checks its exit status.
expect() {
  local want=$1 rc=0
  shift
  "$@" > "$work/out.txt" 2>&1 || rc=$?
  cat "$work/out.txt"
  [ "$rc" -eq "$want" ] || fail "'$*' exited $rc, expected $want"
}
# Datasets of a checkpoint, listed by h5py (not by cohort).
datasets() {
  "$py" -c 'import h5py, sys
f = h5py.File(sys.argv[1], "r")
f.visititems(lambda n, o: print("/" + n) if isinstance(o, h5py.Dataset) else None)' "$1"
}
# flip_byte FILE DATASET: inverts one byte in the middle of DATASET's stored data.
flip_byte() {
  "$py" - "$1" "$2" <<'PY'
import h5py, sys
path, name = sys.argv[1:]
with h5py.File(path, "r") as f:
    d = f[name]
    at = d.id.get_offset() + d.id.get_storage_size() // 2
with open(path, "r+b") as fp:
    fp.seek(at)
    b = fp.read(1)[0]
    fp.seek(at)
    fp.write(bytes([b ^ 0xFF]))
print(f"flipped byte {at} of {path} ({name})")
PY
}

"$cohort" data csv "$src/examples/digits/digits.csv.gz" "$work/digits.h5" --val-fraction 0.2 --seed 0

# Run 1: 2 ranks, relu, checkpoints at steps 100 and 200 (keep_last keeps both).
run=$work/run
"$mpiexec" -n 2 "${flags[@]}" "$cohort" train "$src/configs/mlp-digits.yaml" \
  data.path="$work/digits.h5" run.dir="$run" train.steps=200 train.eval_every=100 \
  run.checkpoint.every=100 run.checkpoint.keep_last=5 > "$work/train.txt"
ck=$run/checkpoints
[ -f "$ck/step-00000100.h5" ] && [ -f "$ck/step-00000200.h5" ] || { ls -l "$ck"; fail "missing checkpoints"; }

# inspect: a directory means the checkpoint `latest` names; every dataset is listed as ok.
expect 0 "$cohort" ckpt inspect "$ck"
grep -Eq "^step +200$" "$work/out.txt" || fail "inspect of the directory is not step 200"
grep -Eq "^world size +2 " "$work/out.txt" || fail "world size"
grep -Eq "^model +mlp, depth 2, hidden 128, relu$" "$work/out.txt" || fail "config summary"
grep -Eq "^optimizer +adamw, lr 0.003$" "$work/out.txt" || fail "config summary (optimizer)"
n=0
for d in $(datasets "$ck/step-00000200.h5"); do
  grep -Eq "^$d +\[[0-9, ]+\] +float32 +ok$" "$work/out.txt" || fail "inspect does not list $d as ok"
  n=$((n + 1))
done
[ "$n" -eq 18 ] || fail "expected 18 datasets (6 model + 12 AdamW moments), h5py sees $n"
expect 0 "$cohort" ckpt inspect "$ck/step-00000100.h5"
grep -Eq "^step +100$" "$work/out.txt" || fail "inspect of step 100"

# Corruption: one byte in the middle of a model tensor, and of an optimizer moment.
cp "$ck/step-00000200.h5" "$work/bad-model.h5"
flip_byte "$work/bad-model.h5" /model/layers.1.weight
expect 1 "$cohort" ckpt inspect "$work/bad-model.h5"
grep -Eq "^/model/layers.1.weight +\[128, 128\] +float32 +MISMATCH" "$work/out.txt" || fail "no MISMATCH row"
grep -q "checksum mismatch in dataset /model/layers.1.weight" "$work/out.txt" || fail "message does not name the dataset"
[ "$(grep -c ' ok$' "$work/out.txt")" -eq 17 ] || fail "the other 17 datasets should still be ok"
expect 1 "$cohort" ckpt export "$work/bad-model.h5" "$work/bad.safetensors"
grep -q "checksum mismatch in dataset /model/layers.1.weight" "$work/out.txt" || fail "export does not name the dataset"
[ ! -e "$work/bad.safetensors" ] && [ ! -e "$work/bad.safetensors.tmp" ] || fail "export left a file behind"
cp "$ck/step-00000200.h5" "$work/bad-optim.h5"
flip_byte "$work/bad-optim.h5" /optim/layers.0.weight/exp_avg_sq
expect 1 "$cohort" ckpt inspect "$work/bad-optim.h5"
grep -q "checksum mismatch in dataset /optim/layers.0.weight/exp_avg_sq" "$work/out.txt" || fail "optim dataset not named"
# Export carries only /model, so a corrupt optimizer moment does not stop it.
expect 0 "$cohort" ckpt export "$work/bad-optim.h5" "$work/from-bad-optim.safetensors"
# A truncated file and a file that is not a checkpoint are read errors (1).
head -c 100000 "$ck/step-00000200.h5" > "$work/truncated.h5"
expect 1 "$cohort" ckpt inspect "$work/truncated.h5"
expect 1 "$cohort" ckpt inspect "$work/digits.h5"
grep -q "not a cohort checkpoint" "$work/out.txt" || fail "dataset file not rejected as a non-checkpoint"
expect 1 "$cohort" ckpt inspect "$work"  # a directory without `latest`
# Usage errors (2).
expect 2 "$cohort" ckpt
expect 2 "$cohort" ckpt inspect
expect 2 "$cohort" ckpt export "$ck"
expect 2 "$cohort" ckpt frobnicate "$ck"

# Export both steps; check the files and the PyTorch interop at both steps.
for s in 100 200; do
  f=$ck/step-00000$s.h5
  expect 0 "$cohort" ckpt export "$f" "$work/step$s.safetensors"
  [ ! -e "$work/step$s.safetensors.tmp" ] || fail "temporary file left behind"
  "$py" "$here/safetensors_check.py" "$work/step$s.safetensors" "$f"
  "$py" "$here/torch_val_loss.py" "$f" "$work/digits.h5" "$run/metrics.jsonl"
done
"$py" "$here/torch_val_loss.py" "$ck/step-00000200.h5" "$work/digits.h5" "$run/metrics.jsonl" \
  "$work/step200.safetensors"
# The export from the file with the corrupt moment equals the clean one.
cmp "$work/step200.safetensors" "$work/from-bad-optim.safetensors" || fail "exports of one model differ"

# Run 2: 3 ranks (shards cut tensors mid-row), gelu, depth 3, width 48.
run2=$work/run2
"$mpiexec" -n 3 "${flags[@]}" "$cohort" train "$src/configs/mlp-digits.yaml" \
  data.path="$work/digits.h5" run.dir="$run2" train.steps=60 train.eval_every=30 \
  train.log_every=30 model.activation=gelu model.depth=3 model.hidden=48 optim.warmup_steps=5 \
  run.checkpoint.every=30 run.checkpoint.keep_last=5 > "$work/train2.txt"
expect 0 "$cohort" ckpt inspect "$run2/checkpoints"
grep -Eq "^model +mlp, depth 3, hidden 48, gelu$" "$work/out.txt" || fail "config summary (run 2)"
grep -Eq "^world size +3 " "$work/out.txt" || fail "world size (run 2)"
for s in 30 60; do
  f=$run2/checkpoints/step-000000$s.h5
  expect 0 "$cohort" ckpt export "$f" "$work/r2-$s.safetensors"
  "$py" "$here/safetensors_check.py" "$work/r2-$s.safetensors" "$f"
  "$py" "$here/torch_val_loss.py" "$f" "$work/digits.h5" "$run2/metrics.jsonl" "$work/r2-$s.safetensors"
done
echo "ckpt tools: passed"
