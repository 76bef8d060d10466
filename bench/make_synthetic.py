#!/usr/bin/python3
"""Synthetic classification data for the MLP benchmark (bench/mlp_ddp.sh).

Writes a CSV of ROWS rows: FEATURES float columns, then an integer label in [0, CLASSES).
Inputs are standard normal; labels are the argmax of a fixed random teacher network
(FEATURES -> 64 tanh -> CLASSES) plus a little label noise, so the task is learnable (an MLP
gets well above chance within a few hundred steps) yet not trivial. Everything is a pure
function of --seed.

  /usr/bin/python3 bench/make_synthetic.py OUT.csv [--rows 16384] [--features 784]
                   [--classes 10] [--seed 0] [--h5 OUT.h5 --cohort BUILD/cohort]

With --h5 the CSV is then converted by `cohort data csv OUT.csv OUT.h5 --val-fraction 0.05`.
Needs only numpy (Debian's python3-numpy)."""
import argparse
import os
import subprocess
import sys

import numpy as np


def make(rows, features, classes, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, features), dtype=np.float32)
    w1 = rng.standard_normal((features, 64)).astype(np.float32) / np.sqrt(features)
    w2 = rng.standard_normal((64, classes)).astype(np.float32) / np.sqrt(64)
    logits = np.tanh(x @ w1 * 2.0) @ w2
    y = logits.argmax(axis=1).astype(np.int64)
    noisy = rng.random(rows) < 0.05  # 5% of labels replaced by a random class
    y[noisy] = rng.integers(0, classes, size=int(noisy.sum()))
    return x, y


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out_csv")
    ap.add_argument("--rows", type=int, default=16384)
    ap.add_argument("--features", type=int, default=784)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--h5", help="also convert to this cohort dataset (HDF5)")
    ap.add_argument("--cohort", help="path of the cohort executable (with --h5)")
    ap.add_argument("--val-fraction", type=float, default=0.05)
    a = ap.parse_args()
    if a.h5 and not a.cohort:
        ap.error("--h5 needs --cohort BUILD/cohort")

    x, y = make(a.rows, a.features, a.classes, a.seed)
    counts = np.bincount(y, minlength=a.classes)
    tmp = a.out_csv + ".partial"
    # 4 decimals keep the file at ~8 bytes a value; the HDF5 copy holds exactly these floats.
    table = np.concatenate([x, y[:, None].astype(np.float32)], axis=1)
    fmt = ["%.4f"] * a.features + ["%d"]
    with open(tmp, "w") as f:
        np.savetxt(f, table, fmt=fmt, delimiter=",")
    os.replace(tmp, a.out_csv)
    print(f"{a.out_csv}: {a.rows} rows x {a.features} features, {a.classes} classes "
          f"(per class {counts.min()}..{counts.max()})", flush=True)

    if a.h5:
        cmd = [a.cohort, "data", "csv", a.out_csv, a.h5, "--val-fraction", str(a.val_fraction),
               "--seed", str(a.seed)]
        print("+ " + " ".join(cmd), flush=True)
        rc = subprocess.call(cmd)
        if rc != 0:
            sys.exit(rc)


if __name__ == "__main__":
    main()
