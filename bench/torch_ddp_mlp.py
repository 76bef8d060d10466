#!/usr/bin/python3
"""PyTorch peer of bench/mlp_step: the same MLP trained with torch DDP (gloo), same data.

  mpirun --bind-to none -n N -x MASTER_ADDR=127.0.0.1 -x MASTER_PORT=PORT -x OPENBLAS_CORETYPE=X \\
      /usr/bin/python3 bench/torch_ddp_mlp.py --config configs/bench-mlp.yaml --data DATA.h5

Launched by mpirun (Debian's torchrun is broken): RANK / WORLD_SIZE come from
OMPI_COMM_WORLD_RANK / SIZE. What it mirrors of cohort, so the two do the same work:
  - model: Linear(in, hidden) + act, (depth-1) x Linear(hidden, hidden) + act, Linear(hidden, C),
    depth / hidden / activation from the cohort config (a flat YAML read here, no PyYAML);
  - loss: cross-entropy, mean over the rank's rows (DDP averages over ranks -> the global mean,
    as cohort's sum-with-1/B-scale); AdamW (lr, betas, eps, weight_decay from the config) with
    decay on weights only, grad clipping at optim.grad_clip, constant lr;
  - batch per rank = ceil-split of the global train.batch_size, rows from a seeded
    permutation per epoch (the sampler itself is not bit-identical to cohort's: timing only);
  - DDP buckets: bucket_cap_mb = parallel.bucket_mb (torch's first bucket is 1 MiB, as cohort's
    first_bucket_mb default), so both reduce the same three ranges of the gradient;
  - threads: each local rank binds itself to its own disjoint share of the cores (as cohort's
    hwloc binding does) BEFORE torch loads, so OpenBLAS (sized at load) and OpenMP get
    cores-per-rank threads; torch.set_num_threads(cores per rank). OPENBLAS_CORETYPE is taken
    from the environment (the harness passes the value cohort picks).
Difference stated openly: the train split is loaded into memory once with h5py (each rank
reads the whole /train/x, 48 MiB); cohort reads each batch's rows from the HDF5 file with
MPI-IO every step. The per-step read cost is measured separately by mlp_step ("data read").

Timing: train.steps steps; every train.log_every steps an interval ends with a small
all_reduce of the loss (like cohort's logging); interval throughput = log_every * B / time.
Reported: median over intervals excluding the first (warm-up), min step, whole-run samples/s.
Last line: "summary: key=value ..." for bench/mlp_ddp.sh."""
import os
import time

from cohort_peer import adamw, ddp_peer_start, median, peer_parser, timed_steps


def main():
    ap = peer_parser("HDF5 made by `cohort data csv` (default: data.path)")
    ap.add_argument("--reps", type=int, default=1, help="timed runs (fresh model each)")
    ap.add_argument("--breakdown", action="store_true",
                    help="also time gather, forward+backward and clip+AdamW without DDP (no comm)")
    a = ap.parse_args()
    cfg, st, rank, world, mine, threads = ddp_peer_start(a, 29517, "torch_ddp_mlp.py")

    import h5py
    import numpy as np
    import torch
    import torch.distributed as dist
    from torch import nn
    from torch.nn.parallel import DistributedDataParallel as DDP

    depth, hidden = int(cfg.get("model.depth", 2)), int(cfg.get("model.hidden", 128))
    act = cfg.get("model.activation", "relu")
    B, steps, seed, clip, bucket_mb = st.B, st.steps, st.seed, st.clip, st.bucket_mb
    if cfg.get("optim.schedule", "constant") != "constant" or int(cfg.get("optim.warmup_steps", 0)):
        if rank == 0:
            print("# note: lr schedule not mirrored (constant lr; costs nothing measurable)")
    path = a.data or cfg["data.path"]

    t_load = time.perf_counter()
    with h5py.File(path, "r") as f:
        x_all = torch.from_numpy(np.ascontiguousarray(f["/train/x"][...]))
        y_all = torch.from_numpy(f["/train/y"][...].astype(np.int64))
        classes = int(f.attrs["num_classes"])
    t_load = time.perf_counter() - t_load
    n, d = x_all.shape
    # ceil-split of the global batch, like ch_part_count/offset
    lo = rank * (B // world) + min(rank, B % world)
    cnt = B // world + (1 if rank < B % world else 0)

    def build():
        torch.manual_seed(seed)
        layers, width = [], d
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.ReLU() if act == "relu" else nn.GELU()]
            width = hidden
        layers.append(nn.Linear(width, classes))
        model = DDP(nn.Sequential(*layers), bucket_cap_mb=bucket_mb)
        decay = [p for name, p in model.named_parameters() if name.endswith("weight")]
        no_decay = [p for name, p in model.named_parameters() if not name.endswith("weight")]
        opt = adamw(torch, cfg, decay, no_decay)
        return model, opt

    def batch_rows(step, gen_cache={}):
        pos, got, rows = step * B + lo, 0, []
        while got < cnt:
            e, off = divmod(pos, n)
            if e not in gen_cache:
                g = torch.Generator().manual_seed(seed * 1000003 + e)
                gen_cache.clear()
                gen_cache[e] = torch.randperm(n, generator=g)
            take = min(cnt - got, n - off)
            rows.append(gen_cache[e][off:off + take])
            pos += take
            got += take
        return torch.cat(rows) if len(rows) > 1 else rows[0]

    def gather(idx):
        return x_all[idx], y_all[idx]

    loss_fn = nn.CrossEntropyLoss()
    results = []
    for rep in range(a.reps):
        model, opt = build()
        ivs, step_min, last_loss, total = timed_steps(
            torch, model, opt, st, cnt, lambda step: gather(batch_rows(step)),
            lambda x, y: loss_fn(model(x), y), B)
        ivs = [n / s for n, s in ivs]
        steady = sorted(ivs[1:] if len(ivs) > 1 else ivs)
        med = median(steady)
        results.append((med, step_min, steps * B / total, last_loss, steady))
        if rank == 0:
            print(f"rep {rep}: {med:8.0f} samples/s (median interval), step {1e3 * B / med:.2f} ms, "
                  f"min {1e3 * step_min:.2f} ms, whole run {steps * B / total:.0f} samples/s, "
                  f"loss {last_loss:.4f}", flush=True)
        del model, opt
    bd = None
    if a.breakdown:
        # Like mlp_step's breakdown: every rank at once, its share of the batch, no DDP wrapper
        # (so no communication), median of 20 steps after 3 warm-up steps.
        model, opt = build()
        plain = model.module
        times = [[], [], []]
        for step in range(23):
            t0 = time.perf_counter()
            idx = batch_rows(step)
            xb, yb = x_all[idx], y_all[idx]
            t1 = time.perf_counter()
            opt.zero_grad(set_to_none=False)
            loss_fn(plain(xb), yb).backward()
            t2 = time.perf_counter()
            if clip > 0:
                torch.nn.utils.clip_grad_norm_(plain.parameters(), clip)
            opt.step()
            t3 = time.perf_counter()
            if step >= 3:
                for k, v in enumerate((t1 - t0, t2 - t1, t3 - t2)):
                    times[k].append(v)
        bd = [sorted(t)[len(t) // 2] for t in times]
        del model, opt, plain
    if rank == 0:
        if bd:
            print(f"breakdown per step, {cnt} rows/rank, no comm: gather {1e3 * bd[0]:.2f} ms, "
                  f"fwd+bwd {1e3 * bd[1]:.2f} ms, clip+adamw {1e3 * bd[2]:.2f} ms", flush=True)
        print(f"# torch {torch.__version__} DDP gloo, {world} rank(s) x {threads} thread(s) "
              f"(cores {mine}), OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '')}, "
              f"bucket_cap_mb {bucket_mb}; train split {n} x {d} loaded into memory in "
              f"{t_load:.2f} s", flush=True)
        # pooled like mlp_step: all steady intervals of all reps, median
        sps = median(v for r in results for v in r[4])
        print(f"summary: n={world} sps={sps:.1f} step_ms={1e3 * B / sps:.3f} "
              f"step_min_ms={1e3 * min(r[1] for r in results):.3f} "
              f"whole_sps={sum(r[2] for r in results) / len(results):.1f} "
              f"loss={results[-1][3]:.4f}"
              + (f" read_ms={1e3 * bd[0]:.3f} fwdbwd_ms={1e3 * bd[1]:.3f} opt_ms={1e3 * bd[2]:.3f}"
                 if bd else ""), flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
