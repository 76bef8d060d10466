#!/usr/bin/env bash
# `cohort estimate` against what training measures: for each strategy a 3-step gpt-tiny run on 2
# ranks with 2 micro-steps (accumulation paths included) writes run.dir/memory.json; the
# estimate must give the same resident state (params, grads, optim) and activation arena, a
# communication peak at least the measured one, and the same bytes per step (zero3: an upper
# bound that assumes every unit is gathered again for backward, so within 2x).
# Usage: test_estimate.sh COHORT SOURCE_DIR MPIEXEC [MPIEXEC_FLAGS...]
set -euo pipefail
cohort=$1 src=$2 mpiexec=$3
shift 3
flags=("$@")
work=$(mktemp -d /tmp/cohort-estimate-XXXXXX)
trap 'rm -rf "$work"' EXIT

# A small val split: the final evaluation reads all of it, and it is most of a short run's time.
"$cohort" data text "$src/examples/shakespeare/input.txt.gz" "$work/text.h5" --val-fraction 0.01 \
  > /dev/null
common=(data.path="$work/text.h5" train.micro_batch_size=8)
"$cohort" estimate "$src/configs/gpt-tiny.yaml" "${common[@]}" --ranks 2 --json > "$work/estimate.json"
"$cohort" estimate "$src/configs/gpt-tiny.yaml" "${common[@]}" --ranks 2 | tee "$work/table.txt"
grep -q "^zero3 " "$work/table.txt"
grep -q "bf16 + fp32 master" "$work/table.txt"

for s in ddp zero1 zero2 zero3; do
  "$mpiexec" -n 2 "${flags[@]}" "$cohort" train "$src/configs/gpt-tiny.yaml" "${common[@]}" \
    parallel.strategy=$s train.steps=3 optim.warmup_steps=1 train.log_every=1 \
    run.dir="$work/$s" run.checkpoint.every=0 > "$work/$s.txt" 2>&1 || { cat "$work/$s.txt"; exit 1; }
done

/usr/bin/python3 - "$work" <<'PY'
import json, sys
work = sys.argv[1]
est = json.load(open(f"{work}/estimate.json"))
assert est["ranks"] == 2 and est["accum"] == 2, est
for s in ["ddp", "zero1", "zero2", "zero3"]:
    m, e = json.load(open(f"{work}/{s}/memory.json")), est["strategies"][s]
    for k in ["params", "grads", "optim", "activations"]:
        assert m[k] == e[k], (s, k, m[k], e[k])
    assert m["comm"] <= e["comm"], (s, "comm", m["comm"], e["comm"])
    if s == "zero3":
        assert 0.5 * e["bytes_per_step"] <= m["bytes_per_step"] <= e["bytes_per_step"], (s, m, e)
    else:
        assert m["bytes_per_step"] == e["bytes_per_step"], (s, m, e)
    print(f"ok {s}: comm {m['comm']} <= {e['comm']}, sent {m['bytes_per_step']} / {e['bytes_per_step']}")
PY

# Usage errors exit 2 with the usage on stderr; a bad key is named.
set +e
"$cohort" estimate "$src/configs/gpt-tiny.yaml" > "$work/e1.txt" 2>&1; r1=$?
"$cohort" estimate "$src/configs/gpt-tiny.yaml" --ranks 0 > "$work/e2.txt" 2>&1; r2=$?
"$cohort" estimate "$src/configs/gpt-tiny.yaml" optim.lrr=1 --ranks 2 > "$work/e3.txt" 2>&1; r3=$?
set -e
[ "$r1" -eq 2 ] && [ "$r2" -eq 2 ] && [ "$r3" -eq 2 ] || { echo "FAIL: exit codes $r1 $r2 $r3"; exit 1; }
grep -q "usage: cohort estimate" "$work/e1.txt"
grep -q "usage: cohort estimate" "$work/e2.txt"
grep -q "optim.lrr" "$work/e3.txt"
echo "ok: usage errors"
