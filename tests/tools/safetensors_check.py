#!/usr/bin/python3
"""A safetensors file written by `cohort ckpt export` against the checkpoint it came from.

Usage: safetensors_check.py OUT.safetensors CKPT.h5

The file is parsed with the standard library alone (struct + json; no safetensors package):
an 8-byte little-endian header length N, N bytes of JSON, then the data. Checked:
  * the header is a JSON object (no duplicate keys) that starts with '{'; N is a multiple of 8
    (cohort pads with spaces so the data starts aligned; the format allows but does not require
    it); 8 + N <= file size;
  * __metadata__ maps strings to strings and names the checkpoint's step, format version and the
    cohort version that wrote it, with format "pt";
  * every tensor is F32 with an integer shape and data_offsets [begin, end] where
    end - begin = 4 * prod(shape); sorted by begin, the tensors tile the data buffer exactly
    (first begins at 0, each begins where the previous ends, the last ends at the file's end);
  * the names are exactly the checkpoint's /model datasets (optimizer state is not exported);
  * every tensor equals h5py's /model/<name> bit for bit (compared as uint32 words);
  * torch.frombuffer gives a float32 tensor of the right shape with the same values.
Exit status: 0 pass, 1 fail, 77 when h5py, numpy or torch cannot be imported (ctest SKIP).
"""
import json
import struct
import sys

try:
    import h5py
    import numpy as np
    import torch
except ImportError as e:  # pragma: no cover - depends on the machine
    print(f"skip: cannot import h5py/numpy/torch: {e}")
    sys.exit(77)


def fail(msg):
    print(f"FAIL: {msg}")
    sys.exit(1)


def no_duplicates(pairs):
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        fail(f"duplicate keys in the header: {keys}")
    return dict(pairs)


def read_safetensors(path):
    """Returns (header dict, metadata dict, data bytes)."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        fail(f"{path}: {len(blob)} bytes, shorter than the length prefix")
    (n,) = struct.unpack("<Q", blob[:8])
    if 8 + n > len(blob):
        fail(f"{path}: header length {n} runs past the end of the file ({len(blob)} bytes)")
    if n % 8:
        fail(f"{path}: header length {n} is not a multiple of 8 (cohort pads it)")
    text = blob[8:8 + n].decode("utf-8")
    if not text.startswith("{"):
        fail(f"header does not start with '{{': {text[:20]!r}")
    if text.rstrip(" ") != text.rstrip():
        fail("header padding is not spaces")
    header = json.loads(text, object_pairs_hook=no_duplicates)
    if not isinstance(header, dict):
        fail("header is not a JSON object")
    meta = header.pop("__metadata__", None)
    if not isinstance(meta, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                             for k, v in meta.items()):
        fail(f"__metadata__ missing or not a string-to-string map: {meta!r}")
    return header, meta, blob[8 + n:]


def check_layout(header, data):
    """data_offsets: consistent with dtype and shape, contiguous, in bounds, covering all."""
    spans = []
    for name, e in header.items():
        if not isinstance(e, dict) or set(e) != {"dtype", "shape", "data_offsets"}:
            fail(f"{name}: entry {e!r} does not have exactly dtype, shape, data_offsets")
        if e["dtype"] != "F32":
            fail(f"{name}: dtype {e['dtype']}, expected F32")
        shape, off = e["shape"], e["data_offsets"]
        if not all(isinstance(d, int) and d >= 0 for d in shape):
            fail(f"{name}: bad shape {shape}")
        if len(off) != 2 or not all(isinstance(o, int) for o in off) or not 0 <= off[0] <= off[1]:
            fail(f"{name}: bad data_offsets {off}")
        if off[1] - off[0] != 4 * int(np.prod(shape, dtype=np.int64)):
            fail(f"{name}: data_offsets {off} hold {off[1] - off[0]} bytes, shape {shape} needs "
                 f"{4 * int(np.prod(shape))}")
        spans.append((off[0], off[1], name))
    spans.sort()
    at = 0
    for b, e, name in spans:
        if b != at:
            fail(f"{name}: begins at {b}, expected {at} (gap or overlap)")
        at = e
    if at != len(data):
        fail(f"tensors end at {at} but the data buffer holds {len(data)} bytes")


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    st_path, ckpt = sys.argv[1:]
    header, meta, data = read_safetensors(st_path)
    check_layout(header, data)
    with h5py.File(ckpt, "r") as f:
        want = {"format": "pt", "cohort_format": "cohort-checkpoint",
                "cohort_format_version": str(int(f.attrs["format_version"])),
                "step": str(int(f.attrs["step"])), "cohort_version": f.attrs["cohort_version"]}
        for k, v in want.items():
            if meta.get(k) != v:
                fail(f"__metadata__[{k!r}] = {meta.get(k)!r}, expected {v!r}")
        names = []
        f["model"].visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
        if sorted(names) != sorted(header):
            fail(f"tensor names {sorted(header)} != checkpoint /model datasets {sorted(names)}")
        for name, e in header.items():
            b, end = e["data_offsets"]
            got = np.frombuffer(data[b:end], dtype="<f4").reshape(e["shape"])
            ref = f["model"][name][...].astype("<f4", copy=False)
            if got.shape != ref.shape:
                fail(f"{name}: shape {got.shape}, checkpoint has {ref.shape}")
            diff = np.count_nonzero(got.view("<u4") != ref.view("<u4"))
            if diff:
                fail(f"{name}: {diff} of {ref.size} elements differ from the checkpoint")
            t = torch.frombuffer(bytearray(data[b:end]), dtype=torch.float32).reshape(e["shape"])
            if t.dtype != torch.float32 or list(t.shape) != list(ref.shape):
                fail(f"{name}: torch sees {t.dtype} {list(t.shape)}")
            if not torch.equal(t, torch.from_numpy(ref.copy())):
                fail(f"{name}: torch values differ")
    print(f"ok: {st_path}: {len(header)} tensors, {len(data)} data bytes, step {meta['step']}, "
          "bit-identical to the checkpoint's /model")
    return 0


if __name__ == "__main__":
    sys.exit(main())
