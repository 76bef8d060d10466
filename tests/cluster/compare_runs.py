"""Compares two cohort training runs numerically (the multinode tests).

  compare_runs.py RUN_A RUN_B STEP TOL

metrics.jsonl: the same steps, and every numeric field but the timings (loss, lr, grad_norm,
val_loss, val_acc...) within TOL relative (floor 1e-3); the final checkpoints
(checkpoints/step-STEP.h5) within TOL by tests/ckpt/compare.py's rule. Prints the worst
differences seen, so that the observed figure can be quoted next to the tolerance.
"""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "ckpt"))
import compare  # noqa: E402  (tests/ckpt/compare.py: params, TIMINGS)

IGNORED = set(compare.TIMINGS) | {"elapsed_s", "comm_ms", "exposed_ms"}


def metrics(a, b, tol):
    ra = [json.loads(line) for line in open(a)]
    rb = [json.loads(line) for line in open(b)]
    assert [r["step"] for r in ra] == [r["step"] for r in rb], f"steps differ: {a} vs {b}"
    worst, where = 0.0, None
    for x, y in zip(ra, rb):
        for k, v in x.items():
            if k in IGNORED or not isinstance(v, (int, float)):
                continue
            assert k in y, f"step {x['step']}: {k} missing in {b}"
            err = abs(v - y[k]) / max(abs(y[k]), 1e-3)
            if err > worst:
                worst, where = err, f"{k} at step {x['step']} ({v} vs {y[k]})"
    assert worst <= tol, f"metrics: max relative difference {worst:.3g} in {where} > {tol}"
    print(f"ok: {len(ra)} metrics lines within {worst:.2g} <= {tol}")


if __name__ == "__main__":
    run_a, run_b, step, tol = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    metrics(f"{run_a}/metrics.jsonl", f"{run_b}/metrics.jsonl", tol)
    ck = f"checkpoints/step-{step:08d}.h5"
    compare.params(f"{run_a}/{ck}", f"{run_b}/{ck}", tol)
