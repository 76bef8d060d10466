"""What the Python peers of the benchmarks share: reading cohort's YAML configs (flat
"section.key" -> "value") and checkpoints, the start of a torch DDP peer under mpirun, and
the GPT-2 that cohort's src/nn/gpt.c computes, written once for training (torch_ddp_gpt.py),
KV-cache decoding (torch_generate.py) and serving (torchserve_handler.py).

torch is imported inside the functions that need it: the DDP peers bind their cores before
torch (and OpenBLAS, sized when it loads) is imported."""
import argparse
import math
import os
import sys
import time
import types


def flat_yaml_text(text):
    """Nested mappings of scalars -> {"section.key": "value"} (enough for cohort configs)."""
    out, stack = {}, []
    for line in text.splitlines():
        line = line.split("#", 1)[0].rstrip()
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        key, _, val = line.strip().partition(":")
        while stack and stack[-1][0] >= indent:
            stack.pop()
        val = val.strip()
        if val == "":
            stack.append((indent, key))
        else:
            out[".".join([s[1] for s in stack] + [key])] = val.strip("'\"")
    return out


def flat_yaml(path):
    with open(path) as f:
        return flat_yaml_text(f.read())


def resolve_checkpoint(path):
    """A checkpoint file, or the file a checkpoint directory's `latest` names."""
    if os.path.isdir(path):
        with open(os.path.join(path, "latest")) as f:
            name = f.readline().strip()
        return name if name.startswith("/") else os.path.join(path, name)
    return path


def load_checkpoint(path):
    """A checkpoint file or directory -> (file, flat config from its `config` attribute,
    {name: torch tensor} of its /model datasets, its step)."""
    import h5py
    import numpy as np
    import torch

    path = resolve_checkpoint(path)
    with h5py.File(path, "r") as f:
        text = f.attrs["config"]
        cfg = flat_yaml_text(text.decode() if isinstance(text, bytes) else text)
        w = {k: torch.from_numpy(np.ascontiguousarray(f["model"][k][...])) for k in f["model"]}
        step = int(f.attrs["step"]) if "step" in f.attrs else 0
    return path, cfg, w, step


def median(values):
    v = sorted(values)
    return v[len(v) // 2] if len(v) % 2 else 0.5 * (v[len(v) // 2 - 1] + v[len(v) // 2])


def bind_cores():
    """Disjoint core share per local rank, like cohort's ch_binding_apply. Returns the cores."""
    local = int(os.environ.get("OMPI_COMM_WORLD_LOCAL_RANK", "0"))
    nlocal = int(os.environ.get("OMPI_COMM_WORLD_LOCAL_SIZE", "1"))
    cores = sorted(os.sched_getaffinity(0))
    total = len(cores)
    if nlocal <= total:
        mine = cores[local * total // nlocal:(local + 1) * total // nlocal]
    else:
        mine = [cores[local % total]]
    os.sched_setaffinity(0, mine)
    return mine


def peer_parser(data_help):
    """The arguments every DDP peer takes (a peer adds its own)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--data", help=data_help)
    ap.add_argument("--steps", type=int, help="override train.steps")
    ap.add_argument("--threads", type=int, help="threads per rank (default: its cores)")
    ap.add_argument("overrides", nargs="*", help="key.sub=value, as for cohort")
    return ap


def ddp_peer_start(a, port, name):
    """The start of a DDP peer launched by mpirun (Debian's torchrun is broken), from its parsed
    peer_parser arguments: the config with its key.sub=value overrides, RANK / WORLD_SIZE from
    Open MPI's variables, the rank bound to its cores BEFORE torch loads (OpenBLAS sizes its
    thread pool when it loads), torch's threads, the gloo process group. Returns
    (cfg, settings, rank, world, cores, threads); settings holds the keys both peers mirror."""
    cfg = flat_yaml(a.config)
    for o in a.overrides:
        k, _, v = o.partition("=")
        cfg[k] = v
    if cfg.get("optim.type", "adamw") != "adamw":
        sys.exit(f"{name}: only optim.type adamw is mirrored")
    rank = int(os.environ.get("OMPI_COMM_WORLD_RANK", os.environ.get("RANK", "0")))
    world = int(os.environ.get("OMPI_COMM_WORLD_SIZE", os.environ.get("WORLD_SIZE", "1")))
    os.environ["RANK"], os.environ["WORLD_SIZE"] = str(rank), str(world)
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", str(port))
    mine = bind_cores()
    threads = a.threads or len(mine)
    for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[v] = str(threads)

    import torch
    import torch.distributed as dist

    torch.set_num_threads(threads)
    torch.set_num_interop_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    settings = types.SimpleNamespace(
        B=int(cfg.get("train.batch_size", 64)), steps=a.steps or int(cfg.get("train.steps", 100)),
        log_every=int(cfg.get("train.log_every", 10)), seed=int(cfg.get("train.seed", 1234)),
        clip=float(cfg.get("optim.grad_clip", 0.0)),
        bucket_mb=float(cfg.get("parallel.bucket_mb", 25)))
    return cfg, settings, rank, world, mine, threads


def adamw(torch, cfg, decay, no_decay):
    """torch's AdamW with the config's lr, betas, eps and weight decay on `decay` only."""
    wd = float(cfg.get("optim.weight_decay", 0.0))
    betas = (float(cfg.get("optim.beta1", 0.9)), float(cfg.get("optim.beta2", 0.999)))
    return torch.optim.AdamW([{"params": decay, "weight_decay": wd},
                              {"params": no_decay, "weight_decay": 0.0}],
                             lr=float(cfg.get("optim.lr", 1e-3)), betas=betas,
                             eps=float(cfg.get("optim.eps", 1e-8)))


# Tensors given to gloo collectives, kept until the process ends. When a tensor's Python object
# dies while a finished gloo work still holds the tensor, torch 1.13 hands the Python object to
# the tensor, and the gloo thread that later frees the work needs the GIL; if the main thread
# is then tearing the process group down (holding the GIL, joining that thread), both wait
# forever (seen at exit of a peer).
_COLLECTIVE_TENSORS = []


def timed_steps(torch, model, opt, st, cnt, batch, loss_of, per_step, on_step=None, show=None):
    """The DDP peers' timed loop, shaped like cohort's: st.steps steps of batch(step) -> (x, y),
    zeroed gradients, loss_of(x, y) (the mean over this rank's cnt samples), backward (DDP
    reduces), clipping at st.clip, the optimizer step; on_step(step) runs first (the LR). Every
    st.log_every steps and at the end an interval ends with an allreduce of the loss sum, like
    cohort's progress line; show(done, loss, rate) then prints it if given. per_step: the work
    of one step (samples or tokens). Returns ([(work, seconds)] per interval, the fastest step
    in seconds, the last interval's mean loss, the whole loop's seconds)."""
    import torch.distributed as dist

    ivs, step_min, loss_acc = [], math.inf, torch.zeros(2, dtype=torch.float64)
    _COLLECTIVE_TENSORS.append(loss_acc)
    last_loss = float("nan")
    dist.barrier()
    t0 = t_iv = time.perf_counter()
    for step in range(st.steps):
        ts = time.perf_counter()
        if on_step:
            on_step(step)
        x, y = batch(step)
        opt.zero_grad(set_to_none=False)
        loss = loss_of(x, y)
        loss.backward()
        if st.clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), st.clip)
        opt.step()
        step_min = min(step_min, time.perf_counter() - ts)
        loss_acc[0] += float(loss.detach()) * cnt
        loss_acc[1] += cnt
        done = step + 1
        if done % st.log_every == 0 or done == st.steps:
            dist.all_reduce(loss_acc)
            k = st.log_every if done % st.log_every == 0 else done % st.log_every
            now = time.perf_counter()
            ivs.append((k * per_step, now - t_iv))
            last_loss = float(loss_acc[0] / loss_acc[1])
            if show:
                show(done, last_loss, k * per_step / (now - t_iv))
            loss_acc.zero_()
            t_iv = time.perf_counter()
    return ivs, step_min, last_loss, time.perf_counter() - t0


# ---- GPT-2 as src/nn/gpt.c computes it ---------------------------------------------------------
# Hugging Face GPT-2 names and layouts, as cohort's spec table and checkpoints: Conv1D weights
# [in, out] (y = x W + b); fused c_attn [C, 3C] = q | k | v, head h at columns h*HS; pre-LN
# blocks x += c_proj(attn(c_attn(ln_1(x)))); x += mlp.c_proj(gelu_tanh(c_fc(ln_2(x)))); ln_f;
# LM head tied to wte; LayerNorm eps 1e-5; no dropout.

GPT_BLOCK = ("ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias",
             "attn.c_proj.weight", "attn.c_proj.bias", "ln_2.weight", "ln_2.bias",
             "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias")


def gpt_shapes(V, T, L, C):
    """Every parameter's (name, shape) in cohort's spec-table order."""
    block = ((C,), (C,), (C, 3 * C), (3 * C,), (C, C), (C,), (C,), (C,),
             (C, 4 * C), (4 * C,), (4 * C, C), (C,))
    return ([("wte.weight", (V, C)), ("wpe.weight", (T, C))]
            + [(f"h.{i}.{n}", s) for i in range(L) for n, s in zip(GPT_BLOCK, block)]
            + [("ln_f.weight", (C,)), ("ln_f.bias", (C,))])


def gpt_init(torch, name, p, L):
    """cohort's initialisation rule: N(0, 0.02), residual projections N(0, 0.02/sqrt(2L)),
    LayerNorm weights 1, biases 0."""
    if p.dim() == 1 and name.endswith("bias"):
        torch.nn.init.zeros_(p)
    elif p.dim() == 1:
        torch.nn.init.ones_(p)
    else:
        std = 0.02 / math.sqrt(2 * L) if name.endswith("c_proj.weight") else 0.02
        torch.nn.init.normal_(p, 0.0, std)


def gpt_layers(w):
    return sum(1 for k in w if k.endswith(".ln_1.weight"))


def gpt_view(w, n_head):
    """The tensors of w (name -> tensor: a checkpoint's /model, or trainable parameters) in the
    order gpt_forward uses them, looked up once rather than on every call."""
    return {"wte": w["wte.weight"], "wpe": w["wpe.weight"], "n_head": n_head,
            "blocks": [tuple(w[f"h.{i}.{k}"] for k in GPT_BLOCK) for i in range(gpt_layers(w))],
            "ln_f": (w["ln_f.weight"], w["ln_f.bias"])}


def gpt_forward(g, tokens, past=0, cache=None, last_only=False):
    """Logits of tokens [B, n] at positions past..past+n-1 for the model g (gpt_view): [B, n, V],
    or the last position's [B, V] when last_only. cache None: attention within this call (past
    must be 0). cache (kc, vc), each [L, B, NH, T, HS]: this call's keys and values are stored
    at past.. and each query attends every cached position up to its own (the KV-cache decode
    of src/nn/gpt_decode.c). Rows stay 2-D [B*n, C] between the attentions, so each linear is
    one addmm (this is a timing peer: every small op shows at one token per call)."""
    import torch
    import torch.nn.functional as F

    wte, NH = g["wte"], g["n_head"]
    C = wte.shape[1]
    HS = C // NH
    B, n = tokens.shape
    x = (wte[tokens] + g["wpe"][past:past + n]).view(B * n, C)
    masked = None if n == 1 else ~torch.ones(n, past + n, dtype=torch.bool).tril(past)
    for l, (g1, b1, wa, ba, wp, bp, g2, b2, wf, bf, wo, bo) in enumerate(g["blocks"]):
        qkv = torch.addmm(ba, F.layer_norm(x, (C,), g1, b1, 1e-5), wa).view(B, n, 3 * C)
        q, k, v = (t.view(B, n, NH, HS).transpose(1, 2) for t in qkv.split(C, dim=2))
        if cache is not None:
            kl, vl = cache[0][l], cache[1][l]                                      # [B, NH, T, HS]
            kl.narrow(2, past, n).copy_(k)
            vl.narrow(2, past, n).copy_(v)
            k, v = kl.narrow(2, 0, past + n), vl.narrow(2, 0, past + n)
        s = (q @ k.transpose(2, 3)) * (1.0 / math.sqrt(HS))                       # [B, NH, n, past+n]
        if masked is not None:
            s = s.masked_fill(masked, float("-inf"))
        y = (F.softmax(s, dim=-1) @ v).transpose(1, 2).reshape(B * n, C)
        x = x + torch.addmm(bp, y, wp)
        h = F.gelu(torch.addmm(bf, F.layer_norm(x, (C,), g2, b2, 1e-5), wf), approximate="tanh")
        x = x + torch.addmm(bo, h, wo)
    x = x.view(B, n, C)[:, -1] if last_only else x.view(B, n, C)
    return F.layer_norm(x, (C,), *g["ln_f"], 1e-5) @ wte.t()
