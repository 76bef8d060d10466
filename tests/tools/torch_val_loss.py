#!/usr/bin/python3
"""PyTorch interop of a cohort checkpoint: the validation loss of its weights, in torch.

Usage: torch_val_loss.py CKPT.h5 DATA.h5 METRICS.jsonl [WEIGHTS.safetensors]

Builds a torch nn.Module MLP from the config stored in the checkpoint (model.depth, hidden,
activation; nn.Linear layers named layers.{i}), loads the /model tensors into its state_dict by
name with strict=True (or, given WEIGHTS.safetensors, the tensors `cohort ckpt export` wrote),
evaluates the validation split of the dataset (/val/x, /val/y) and compares the mean
cross-entropy and the accuracy with the val_loss / val_acc that cohort logged in metrics.jsonl at
the checkpoint's step (evaluated right before that checkpoint was written, on the same weights).

Reference: torch in float64. Tolerance on the loss: 1e-4 relative. cohort evaluates in float32
(three GEMMs with inner dimensions <= 128, then log-sum-exp in double), torch's float32 and
cohort's float32 differ from float64 only by rounding in sums of different order: measured
about 1e-7..1e-6 relative on these models (printed below next to torch-float32's own error as a
yardstick), so 1e-4 leaves two orders of magnitude for other CPUs and BLAS builds. A real fault
is far outside it: the weights of another checkpoint step (~25% here), the other activation
(relu for gelu or back: 8e-4..9e-3 measured), a zeroed first-layer bias (2e-3..1e-2), a transposed
or missing tensor (load_state_dict fails); the script measures the activation and bias controls
and requires them to fail. Finer model details are mlp_vs_torch's job (tests/python, 1e-5 on
raw outputs): GELU's erf form instead of cohort's tanh form moves this loss by only ~2e-5.
Accuracy: the count of correct predictions must match to
within 1 of the val rows: a row whose top two logits are within float32 rounding of each other
may flip its argmax, nothing else may differ.
Exit status: 0 pass, 1 fail, 77 when torch, h5py or numpy cannot be imported (ctest SKIP).
"""
import json
import os
import re
import struct
import sys

try:
    import h5py
    import numpy as np
    import torch
    import torch.nn.functional as F
except ImportError as e:  # pragma: no cover - depends on the machine
    print(f"skip: cannot import torch/h5py/numpy: {e}")
    sys.exit(77)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
from cohort_mlp import MLP  # noqa: E402

LOSS_RTOL = 1e-4
ACC_ROWS = 1


def parse_config(text):
    """The stored YAML config as {"model": {...}, ...}: PyYAML when installed, else a minimal
    reader of cohort's own output (nested mappings of scalars, '#' comments)."""
    try:
        import yaml
        return yaml.safe_load(text)
    except ImportError:
        pass
    root = {}
    stack = [(-1, root)]  # (indent, mapping) of the open sections
    for line in text.splitlines():
        body = re.sub(r'\s+#.*$', '', line) if not line.lstrip().startswith("#") else ""
        if not body.strip():
            continue
        indent = len(body) - len(body.lstrip())
        key, _, value = body.strip().partition(":")
        while stack[-1][0] >= indent:
            stack.pop()
        parent = stack[-1][1]
        value = value.strip()
        if not value:
            parent[key] = {}
            stack.append((indent, parent[key]))
        else:
            parent[key] = value.strip('"')
    return root


def read_safetensors(path):
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    header.pop("__metadata__", None)
    data = blob[8 + n:]
    return {name: torch.frombuffer(bytearray(data[e["data_offsets"][0]:e["data_offsets"][1]]),
                                   dtype=torch.float32).reshape(e["shape"])
            for name, e in header.items()}


def evaluate(model, x, y, dtype):
    with torch.no_grad():
        logits = model.to(dtype)(x.to(dtype))
        loss = F.cross_entropy(logits, y, reduction="mean").item()
        correct = int((logits.argmax(dim=1) == y).sum().item())
    return loss, correct


def main():
    if len(sys.argv) not in (4, 5):
        print(__doc__)
        return 2
    ckpt, data, metrics = sys.argv[1:4]
    weights = sys.argv[4] if len(sys.argv) == 5 else None
    with h5py.File(ckpt, "r") as f:
        step = int(f.attrs["step"])
        cfg = parse_config(f.attrs["config"])
        state = {n: torch.from_numpy(f["model"][n][...]) for n in f["model"]}
    if weights:
        state = read_safetensors(weights)
    m = cfg["model"]
    if m["type"] != "mlp":
        print(f"FAIL: model.type {m['type']}: this check builds MLPs only")
        return 1
    depth, hidden, act = int(m["depth"]), int(m["hidden"]), m["activation"]
    with h5py.File(data, "r") as f:
        x = torch.from_numpy(f["val/x"][...])
        y = torch.from_numpy(f["val/y"][...].astype(np.int64))
        classes = int(f.attrs["num_classes"])
    n = len(y)
    model = MLP(x.shape[1], hidden, depth, classes, act)
    model.load_state_dict(state, strict=True)  # names and shapes must be torch's

    logged = [r for r in map(json.loads, open(metrics)) if r["step"] == step and "val_loss" in r]
    if len(logged) != 1:
        print(f"FAIL: {metrics} has {len(logged)} evaluated records for step {step}")
        return 1
    c_loss, c_acc = logged[0]["val_loss"], logged[0]["val_acc"]
    c_correct = round(c_acc * n)

    r_loss, r_correct = evaluate(model, x, y, torch.float64)
    t_loss, _ = evaluate(model, x, y, torch.float32)
    err = abs(c_loss - r_loss) / abs(r_loss)
    t_err = abs(t_loss - r_loss) / abs(r_loss)
    src = weights or ckpt
    print(f"step {step} ({depth}x{hidden} {act}, {n} val rows, weights from {src}):")
    print(f"  val_loss: cohort {c_loss:.9g}, torch float64 {r_loss:.9g}: rel err {err:.2e} "
          f"(torch float32: {t_err:.2e}; tolerance {LOSS_RTOL:g})")
    print(f"  correct:  cohort {c_correct}, torch float64 {r_correct} of {n}")
    ok = err <= LOSS_RTOL and abs(c_correct - r_correct) <= ACC_ROWS

    # Negative controls: faults this comparison must see.
    controls = []
    wrong_act = MLP(x.shape[1], hidden, depth, classes, "relu" if act == "gelu" else "gelu")
    wrong_act.load_state_dict(state, strict=True)
    controls.append(("other activation", wrong_act))
    no_bias = MLP(x.shape[1], hidden, depth, classes, act)
    no_bias.load_state_dict(state, strict=True)
    with torch.no_grad():
        no_bias.layers[0].bias.zero_()
    controls.append(("first bias zeroed", no_bias))
    for what, mdl in controls:
        l, _ = evaluate(mdl, x, y, torch.float64)
        e = abs(c_loss - l) / abs(l)
        print(f"  control ({what}): rel err {e:.2e} (must exceed the tolerance)")
        if e <= LOSS_RTOL:
            print(f"FAIL: the control '{what}' passes: the comparison cannot see that fault")
            ok = False
    print("ok" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
