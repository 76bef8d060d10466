#!/usr/bin/python3
"""PyTorch peer of `cohort train` for model.type=gpt: the same GPT-2 trained with torch DDP (gloo).

  mpirun --bind-to none -n N -x MASTER_ADDR=127.0.0.1 -x MASTER_PORT=PORT -x OPENBLAS_CORETYPE=X \\
      /usr/bin/python3 bench/torch_ddp_gpt.py --config configs/gpt-tiny.yaml --data DATA.h5 \\
      [key.sub=value ...]

Launched by mpirun (Debian's torchrun is broken): RANK / WORLD_SIZE come from
OMPI_COMM_WORLD_RANK / SIZE. What it mirrors of cohort (src/nn/gpt.c), so the two do the same work:
  - model: cohort_peer.gpt_forward, GPT-2 as src/nn/gpt.c computes it, on trainable parameters
    in cohort's names and layouts (Conv1D weights [in, out]); causal attention written out as
    matmul + mask + softmax + matmul (torch 1.13 has no scaled_dot_product_attention), GELU
    (tanh approximation), 4x MLP, tied LM head, no dropout; cohort_peer.gpt_init: N(0, 0.02),
    residual projections N(0, 0.02/sqrt(2 L)), LayerNorm weights 1, zero biases (as cohort);
    n_layer / n_head / n_embd / context from the cohort config (a flat YAML read here, no PyYAML);
    vocab_size 0 = the data's (the file's vocab_size attribute: 256 for the byte tokenizer);
  - loss: cross-entropy, mean over the rank's tokens (DDP averages over ranks -> the mean over the
    global batch's tokens, as cohort's 1/(B*T) scale); AdamW (lr, betas, eps, weight_decay from the
    config) with decay on the 2-D tensors only (cohort: no_decay = 1-D tensors), grad clipping at
    optim.grad_clip, lr schedule (linear warmup + cosine to min_lr) as ch_lr_at;
  - batch per rank = ceil-split of the global train.batch_size (sequences of `context` tokens);
    windows of context+1 tokens at random offsets of /train/tokens, read once into memory with
    h5py (cohort reads each batch from the HDF5 file; its sampler is not mirrored: timing only);
  - DDP buckets: bucket_cap_mb = parallel.bucket_mb (torch's first bucket is 1 MiB, as cohort's
    first_bucket_mb default);
  - threads: each local rank binds itself to its own disjoint share of the cores (as cohort's hwloc
    binding does) BEFORE torch loads, so OpenBLAS (sized at load) and OpenMP get cores-per-rank
    threads; torch.set_num_threads(cores per rank). OPENBLAS_CORETYPE is taken from the
    environment (bench/gpt_ddp.sh passes the value cohort picks).

Timing: train.steps steps; every train.log_every steps an interval ends with an all_reduce of the
loss sum (like cohort's progress line); interval throughput = log_every * B * T / time.
Reported, like bench/gpt_ddp.sh derives cohort's from metrics.jsonl: the median of the interval
throughputs excluding the first interval (warm-up), their time-weighted mean (tokens of those
intervals / their time) and the best of them. Last line: "summary: key=value ..." (machine-readable)."""
import math
import os
import sys
import time

from cohort_peer import (adamw, ddp_peer_start, gpt_forward, gpt_init, gpt_shapes, gpt_view, median,
                         peer_parser, timed_steps)


def make_gpt(torch, V, T, L, NH, C):
    """The trainable GPT-2 (built after torch is imported, so that binding comes first)."""
    names, shapes = zip(*gpt_shapes(V, T, L, C))

    class GPT(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.params = torch.nn.ParameterList(torch.nn.Parameter(torch.empty(s)) for s in shapes)
            for name, p in zip(names, self.params):
                gpt_init(torch, name, p, L)
            self.view = gpt_view(dict(zip(names, self.params)), NH)

        def forward(self, idx):
            return gpt_forward(self.view, idx)

    return GPT()


def main():
    a = peer_parser("HDF5 made by `cohort data text` (default: data.path)").parse_args()
    cfg, st, rank, world, mine, threads = ddp_peer_start(a, 29519, "torch_ddp_gpt.py")

    import h5py
    import numpy as np
    import torch
    import torch.distributed as dist
    import torch.nn.functional as F
    from torch.nn.parallel import DistributedDataParallel as DDP

    if cfg.get("model.type", "mlp") != "gpt":
        sys.exit("torch_ddp_gpt.py: the config's model.type is not gpt")
    L, NH = int(cfg.get("model.n_layer", 4)), int(cfg.get("model.n_head", 4))
    C, T = int(cfg.get("model.n_embd", 128)), int(cfg.get("model.context", 64))
    B, steps, seed, bucket_mb = st.B, st.steps, st.seed, st.bucket_mb
    lr0 = float(cfg.get("optim.lr", 1e-3))
    min_lr = float(cfg.get("optim.min_lr", 0.0))
    warm = int(cfg.get("optim.warmup_steps", 0))
    cosine = cfg.get("optim.schedule", "constant") == "cosine"
    path = a.data or cfg["data.path"]

    t_load = time.perf_counter()
    with h5py.File(path, "r") as f:
        tokens = torch.from_numpy(f["/train/tokens"][...].astype(np.int64))
        file_vocab = int(f.attrs.get("vocab_size", 0))
    t_load = time.perf_counter() - t_load
    V = int(cfg.get("model.vocab_size", 0)) or file_vocab or int(tokens.max()) + 1
    ntok = tokens.numel()
    # ceil-split of the global batch, like ch_part_count/offset
    cnt = B // world + (1 if rank < B % world else 0)

    torch.manual_seed(seed)
    raw = make_gpt(torch, V, T, L, NH, C)
    nparams = sum(p.numel() for p in raw.parameters())
    model = DDP(raw, bucket_cap_mb=bucket_mb)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = adamw(torch, cfg, decay, no_decay)

    def lr_at(step):  # ch_lr_at
        if step < warm:
            return lr0 * (step + 1) / warm
        if not cosine or steps <= warm:
            return lr0
        prog = min(1.0, (step - warm) / (steps - warm))
        return min_lr + 0.5 * (lr0 - min_lr) * (1.0 + math.cos(math.pi * prog))

    gen = torch.Generator().manual_seed(seed * 1000003 + rank)
    offs = torch.arange(T + 1)

    def batch(step):
        starts = torch.randint(0, ntok - T, (cnt,), generator=gen)
        w = tokens[starts[:, None] + offs]               # [cnt, T+1]
        return w[:, :-1], w[:, 1:]

    def set_lr(step):
        for g in opt.param_groups:
            g["lr"] = lr_at(step)

    def show(done, loss, rate):
        if rank == 0:
            print(f"step {done}/{steps} | loss {loss:.4f} | {rate:.0f} tok/s", flush=True)

    ivs, step_min, last_loss, total = timed_steps(
        torch, model, opt, st, cnt, batch,
        lambda x, y: F.cross_entropy(model(x).view(-1, V), y.reshape(-1)), B * T, set_lr, show)
    steady = ivs[1:] if len(ivs) > 1 else ivs
    rates = sorted(n / s for n, s in steady)
    med = median(rates)
    mean = sum(n for n, _ in steady) / sum(s for _, s in steady)
    if rank == 0:
        print(f"# torch {torch.__version__} DDP gloo, {world} rank(s) x {threads} thread(s) "
              f"(cores {mine}), OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '')}, "
              f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '')}, bucket_cap_mb {bucket_mb}; "
              f"GPT L={L} NH={NH} C={C} T={T} V={V}, {nparams} parameters; "
              f"{ntok} train tokens loaded in {t_load:.2f} s", flush=True)
        print(f"summary: n={world} tok_s={med:.1f} tok_s_mean={mean:.1f} tok_s_best={rates[-1]:.1f} "
              f"step_ms={1e3 * B * T / med:.3f} step_min_ms={1e3 * step_min:.3f} "
              f"whole_tok_s={steps * B * T / total:.1f} intervals={len(steady)} "
              f"loss={last_loss:.4f} params={nparams}", flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
