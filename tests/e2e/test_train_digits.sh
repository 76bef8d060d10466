#!/usr/bin/env bash
# End to end: `mpirun -n 2 cohort train configs/mlp-digits.yaml` on the shipped digits reaches
# >= 97% validation accuracy, writes metrics.jsonl (one object per logged step, with the
# required fields) and the resolved config.yaml; a bad override stops with exit 2 naming the key.
# Usage: test_train_digits.sh COHORT SOURCE_DIR MPIEXEC [MPIEXEC_FLAGS...]
set -euo pipefail
cohort=$1 src=$2 mpiexec=$3
shift 3
flags=("$@")
work=$(mktemp -d /tmp/cohort-e2e-XXXXXX)
trap 'rm -rf "$work"' EXIT

"$cohort" data csv "$src/examples/digits/digits.csv.gz" "$work/digits.h5" --val-fraction 0.2 --seed 0
start=$(date +%s)
"$mpiexec" -n 2 "${flags[@]}" "$cohort" train "$src/configs/mlp-digits.yaml" \
  data.path="$work/digits.h5" run.dir="$work/run" | tee "$work/out.txt"
elapsed=$(( $(date +%s) - start ))
echo "training took ${elapsed}s"

/usr/bin/python3 - "$work/run" <<'PY'
import json, sys
run = sys.argv[1]
rows = [json.loads(l) for l in open(f"{run}/metrics.jsonl")]
assert rows, "metrics.jsonl is empty"
for r in rows:
    for k in ("step", "epoch", "loss", "lr", "samples_per_s"):
        assert k in r, f"missing {k} in {r}"
steps = [r["step"] for r in rows]
assert steps == sorted(steps) and steps[-1] == 600, steps
final = rows[-1]
assert "val_acc" in final and "val_loss" in final, final
assert final["val_acc"] >= 0.97, f"val_acc {final['val_acc']} < 0.97"
assert rows[0]["loss"] > final["loss"], "loss did not decrease"
cfg = open(f"{run}/config.yaml").read()
assert "batch_size: 64" in cfg and "type: mlp" in cfg, cfg
print(f"ok: final val_acc {final['val_acc']:.4f}, val_loss {final['val_loss']:.4f}")
PY
grep -q "step 600/600" "$work/out.txt"
grep -q "ETA" "$work/out.txt"

# --print-config resolves file + overrides without MPI.
"$cohort" train "$src/configs/mlp-digits.yaml" train.steps=70 --print-config > "$work/resolved.yaml"
grep -Eq "^  steps: 70( |$)" "$work/resolved.yaml"

# A bad value must stop every rank with exit 2 and name the key and its origin.
set +e
"$mpiexec" -n 2 "${flags[@]}" "$cohort" train "$src/configs/mlp-digits.yaml" optim.lr=fast \
  run.dir="$work/bad" > "$work/bad.txt" 2>&1
rc=$?
set -e
cat "$work/bad.txt"
[ "$rc" -ne 0 ] || { echo "bad override was accepted"; exit 1; }
grep -q "optim.lr" "$work/bad.txt"
echo "e2e digits: passed"
