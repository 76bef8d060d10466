"""Compares cohort checkpoints and metrics files (used by the checkpoint e2e tests).

  compare.py params A.h5 B.h5 [TOL]   every /model and /optim dataset: bit-identical when TOL
                                      is 0, else max |a-b| / max(|b|, 1e-3) <= TOL
  compare.py metrics A.jsonl B.jsonl  identical lines, ignoring samples_per_s and tokens_per_s
                                      (timings)
  compare.py attr FILE NAME VALUE     root attribute NAME equals VALUE (as text)
"""
import json
import sys

import h5py
import numpy as np


def tensors(path):
    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda n, o: out.__setitem__(n, o[()]) if isinstance(o, h5py.Dataset) else None)
    return out


def params(a, b, tol=0.0):
    ta, tb = tensors(a), tensors(b)
    assert ta.keys() == tb.keys(), f"datasets differ: {sorted(ta.keys() ^ tb.keys())}"
    worst, where = 0.0, None
    for k in ta:
        x, y = ta[k].astype(np.float64), tb[k].astype(np.float64)
        assert x.shape == y.shape, f"{k}: shape {x.shape} vs {y.shape}"
        if tol == 0.0:
            assert np.array_equal(ta[k].view(np.uint32), tb[k].view(np.uint32)), f"{k} differs"
            continue
        err = float(np.max(np.abs(x - y) / np.maximum(np.abs(y), 1e-3)))
        if err > worst:
            worst, where = err, k
    assert worst <= tol, f"max relative difference {worst:.3g} in {where} > {tol}"
    print(f"ok: {len(ta)} tensors {'bit-identical' if tol == 0 else f'within {worst:.2g} <= {tol}'}")


TIMINGS = ("samples_per_s", "tokens_per_s")


def metrics(a, b):
    def rows(p):
        return [{k: v for k, v in json.loads(l).items() if k not in TIMINGS} for l in open(p)]
    ra, rb = rows(a), rows(b)
    assert ra == rb, f"metrics differ:\n{ra}\n{rb}"
    print(f"ok: {len(ra)} metrics lines identical")


def attr(path, name, value):
    with h5py.File(path, "r") as f:
        got = f.attrs[name]
    assert str(got) == value, f"{path}: {name} is {got}, expected {value}"


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "params":
        params(args[0], args[1], float(args[2]) if len(args) > 2 else 0.0)
    elif cmd == "metrics":
        metrics(*args)
    elif cmd == "attr":
        attr(*args)
    else:
        sys.exit(f"unknown command {cmd}")
