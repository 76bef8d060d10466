"""Reads RUN_DIR's TensorBoard event files with TensorBoard's own EventAccumulator and checks
that every scalar series equals metrics.jsonl's: the documented tag of each key
(docs/monitoring.md), the same steps in order, values equal to float32 precision
(|tb - json| <= 2^-23 |json|: the event file holds float32, metrics.jsonl %.9g of the double);
a null in metrics.jsonl is no point; and the memory/* tags' last points equal memory.json. Usage: tensorboard_check.py RUN_DIR [EXPECTED_FILES]"""
import glob
import json
import os
import sys

from tensorboard.backend.event_processing import event_accumulator

TAGS = {
    "epoch_float": "train/epoch",
    "loss": "train/loss",
    "lr": "train/lr",
    "grad_norm": "train/grad_norm",
    "samples_per_s": "train/samples_per_s",
    "tokens_per_s": "train/tokens_per_s",
    "skipped_steps": "train/skipped_steps",
    "val_loss": "val/loss",
    "val_acc": "val/acc",
}


def main():
    run = sys.argv[1]
    files = sorted(glob.glob(os.path.join(run, "events.out.tfevents.*")))
    if len(sys.argv) > 2 and len(files) != int(sys.argv[2]):
        sys.exit(f"FAIL: {len(files)} event files in {run}, expected {sys.argv[2]}")
    want = {}
    with open(os.path.join(run, "metrics.jsonl")) as f:
        for line in f:
            rec = json.loads(line)
            for key, value in rec.items():
                if key in ("step", "epoch"):
                    continue
                if key not in TAGS:
                    sys.exit(f"FAIL: metrics.jsonl key {key!r} has no TensorBoard tag here")
                if value is not None:
                    want.setdefault(TAGS[key], []).append((rec["step"], value))
    acc = event_accumulator.EventAccumulator(run, size_guidance={event_accumulator.SCALARS: 0})
    acc.Reload()
    # The per-rank memory, once at the end of each start: its last point is memory.json's.
    with open(os.path.join(run, "memory.json")) as f:
        memory = json.load(f)
    last_step = max(s for series in want.values() for s, _ in series)
    for name in ("params", "grads", "optim", "comm", "activations"):
        tag = f"memory/{name}_mib"
        if tag not in acc.Tags()["scalars"]:
            sys.exit(f"FAIL: no {tag} in the event files")
        e = acc.Scalars(tag)[-1]
        mib = memory[name] / 1048576.0
        if e.step != last_step or abs(e.value - mib) > 2.0 ** -23 * abs(mib):
            sys.exit(f"FAIL: {tag}: {e.value!r} at step {e.step}, memory.json {mib!r} at "
                     f"step {last_step}")
    got_tags = sorted(t for t in acc.Tags()["scalars"] if not t.startswith("memory/"))
    if got_tags != sorted(want):
        sys.exit(f"FAIL: tags {got_tags}, metrics.jsonl has {sorted(want)}")
    points = 0
    for tag, series in sorted(want.items()):
        events = acc.Scalars(tag)
        steps = [e.step for e in events]
        if steps != [s for s, _ in series]:
            sys.exit(f"FAIL: {tag}: steps {steps}, metrics.jsonl {[s for s, _ in series]}")
        for e, (step, value) in zip(events, series):
            if abs(e.value - value) > 2.0 ** -23 * abs(value):
                sys.exit(f"FAIL: {tag} at step {step}: {e.value!r} vs metrics.jsonl {value!r}")
            points += 1
        walls = [e.wall_time for e in events]
        if walls != sorted(walls) or walls[0] < 1.6e9:
            sys.exit(f"FAIL: {tag}: wall times {walls}")
    print(f"tensorboard_check: {run}: {len(files)} file(s), {len(want)} tags, {points} points "
          f"equal to metrics.jsonl")


main()
