"""What the torch reference tests share: their imports (the process exits 77, ctest's SKIP, when
torch, h5py or numpy cannot be imported) and the relative error they measure with."""
import sys

try:
    import h5py  # noqa: F401  (re-exported)
    import numpy as np
    import torch  # noqa: F401
    import torch.nn.functional as F  # noqa: F401
except ImportError as e:  # pragma: no cover - depends on the machine
    print(f"skip: cannot import torch/h5py/numpy: {e}")
    sys.exit(77)


def rel_err(c, r, floor_frac):
    """Max over entries of |c - r| / max(|r|, floor_frac * max|r|)."""
    c = np.asarray(c, dtype=np.float64)
    r = np.asarray(r, dtype=np.float64)
    floor = floor_frac * float(np.max(np.abs(r))) if r.size else 0.0
    denom = np.maximum(np.abs(r), floor)
    if np.any(denom == 0):
        return 0.0 if np.array_equal(c, r) else float("inf")
    return float(np.max(np.abs(c - r) / denom))
