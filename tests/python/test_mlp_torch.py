#!/usr/bin/python3
"""cohort's MLP against PyTorch: loss, every gradient, and SGD / AdamW trajectories.

Usage: test_mlp_torch.py PATH/TO/mlp_dump

For each model config, mlp_dump (C, fp32) writes the batch, the initial parameters, the mean
cross-entropy loss and its gradients, and the losses and final parameters of a short optimizer
run on that batch (tests/nn/mlp_dump.c). Here a torch model with nn.Linear layers named
layers.{i} (so the spec table's names must be torch's state_dict names: load_state_dict is
strict) runs the same batch from the same parameters in float64 -- the reference -- and in
float32, whose own error against float64 is reported next to cohort's as the yardstick of what
fp32 can do.

Tolerance: 1e-5 relative, for the loss, every gradient entry, every loss along a trajectory and
every final parameter. fp32 has a unit roundoff of 6e-8; the sums here have at most a few
hundred terms, so honest fp32 results sit around 1e-7..3e-6 relative (float32 torch's own
column shows the same), while any real bug (wrong index, transpose, missing bias gradient,
wrong activation derivative, decay applied to biases, a missing bias correction) gives errors
of 1e-3 or more.

Floors for near-zero entries, err = max_j |c_j - r_j| / max(|r_j|, floor):
  * gradients: floor = 0.1 * max_k |r_k| of the tensor. A gradient entry is a sum of products
    whose rounding error scales with the terms summed -- about the tensor's largest entry -- not
    with the entry, which cancellation can make arbitrarily small. Measured: both cohort and
    float32 torch are off by 1e-7..3e-7 of the tensor's max, so entries under 10% of the max
    are held to 1e-6 * max (~8 fp32 ulps of the max). With a 1e-2 floor (1e-7 * max, ~1 ulp)
    float32 torch itself fails (up to 9.6e-6 vs 1e-5, cohort 1.1e-5): that floor asks for
    better than fp32 and does not test cohort.
  * final parameters: floor = max_k |r_k| (normwise). A parameter after T steps is
    p_0 - sum of T updates; its rounding error scales with |p_0| and the update sizes, not with
    its own value. AdamW makes this sharp: it normalises each element's step to ~lr, so an
    element whose gradient is small (large relative rounding error through cancellation) still
    takes full-size steps carrying that relative error. Measured: after 20 AdamW steps, cohort
    and float32 torch both differ from float64 by up to ~2e-6 of the tensor's max, but by up to
    2e-5 (cohort) / 1e-5 (torch fp32) with a 0.1 * max floor.
  * losses: scalars of size ~1; no floor.
Exit status: 0 pass, 1 fail, 77 when torch or h5py cannot be imported (ctest SKIP).
"""
import os
import subprocess
import sys
import tempfile

from reftest import F, h5py, np, rel_err, torch  # exits 77 (SKIP) without them
from cohort_mlp import MLP  # noqa: E402

TOL = 1e-5
GRAD_FLOOR = 0.1   # x max|ref| of the tensor, see above
PARAM_FLOOR = 1.0  # x max|ref| of the tensor (normwise), see above
STEPS = 20

# (name, activation, depth, hidden, in_features, classes, batch, seed)
MODELS = [
    ("relu-d2", "relu", 2, 16, 12, 4, 24, 1),
    ("gelu-d3-w33", "gelu", 3, 33, 20, 10, 32, 2),
    ("logreg-d0", "relu", 0, 8, 15, 3, 40, 3),  # depth 0: one linear layer, no activation
]
OPTIMS = ["sgd", "adamw"]


def attr(f, name):
    v = f.attrs[name]
    if isinstance(v, (bytes, np.bytes_)):
        return v.decode()
    return v.item() if hasattr(v, "item") else v


def tensors(group):
    return {name: torch.from_numpy(group[name][...]) for name in group.keys()}


def make_model(f, params, dtype):
    m = MLP(attr(f, "in_features"), attr(f, "hidden"), attr(f, "depth"), attr(f, "classes"),
            attr(f, "activation"))
    m.load_state_dict(params, strict=True)  # names and shapes must match the spec table
    return m.to(dtype)


def loss_and_grads(f, params, x, y, dtype):
    m = make_model(f, params, dtype)
    loss = F.cross_entropy(m(x.to(dtype)), y)
    loss.backward()
    return loss.item(), {n: p.grad.detach().double().numpy() for n, p in m.named_parameters()}


def make_optim(f, model, decay_biases=False):
    """Weight decay on weights only (two param groups), as cohort's no_decay spec column says."""
    wd = attr(f, "weight_decay")
    decay = [p for n, p in model.named_parameters() if decay_biases or n.endswith(".weight")]
    rest = [p for n, p in model.named_parameters() if not (decay_biases or n.endswith(".weight"))]
    groups = [{"params": decay, "weight_decay": wd}, {"params": rest, "weight_decay": 0.0}]
    if attr(f, "optim") == "sgd":
        return torch.optim.SGD(groups, lr=attr(f, "lr"), momentum=attr(f, "momentum"))
    return torch.optim.AdamW(groups, lr=attr(f, "lr"), betas=(attr(f, "beta1"), attr(f, "beta2")),
                             eps=attr(f, "eps"))


def trajectory(f, params, x, y, dtype, decay_biases=False):
    m = make_model(f, params, dtype)
    opt = make_optim(f, m, decay_biases)
    xs = x.to(dtype)
    losses = []
    for _ in range(attr(f, "steps")):
        opt.zero_grad()
        loss = F.cross_entropy(m(xs), y)
        losses.append(loss.item())
        loss.backward()
        opt.step()
    return np.array(losses), {n: p.detach().double().numpy() for n, p in m.named_parameters()}


class Report:
    def __init__(self):
        self.failures = []
        print(f"errors against float64 torch, relative, tolerance {TOL:g}; floor as a fraction "
              f"of the tensor's max |ref|")
        print(f"{'run':<20} {'quantity':<26} {'floor':>5} {'cohort err':>11} {'torch32 err':>11}")

    def row(self, run, what, floor, err_cohort, err_t32, tol=TOL):
        ok = err_cohort <= tol
        print(f"{run:<20} {what:<26} {floor:5g} {err_cohort:11.3e} {err_t32:11.3e}  "
              f"{'ok' if ok else 'FAIL'}")
        if not ok:
            self.failures.append(f"{run}: {what}: rel err {err_cohort:.3e} > {tol:g}")

    def require(self, cond, msg):
        if not cond:
            print(f"FAIL: {msg}")
            self.failures.append(msg)


def check_gradients(rep, run, f):
    params, x = tensors(f["params"]), torch.from_numpy(f["x"][...])
    y = torch.from_numpy(f["y"][...]).long()
    c_loss = float(f["loss"][()])
    c_grads = {n: f["grads"][n][...] for n in f["grads"].keys()}
    r_loss, r_grads = loss_and_grads(f, params, x, y, torch.float64)
    t_loss, t_grads = loss_and_grads(f, params, x, y, torch.float32)
    rep.require(sorted(c_grads) == sorted(r_grads),
                f"{run}: tensor names differ: {sorted(c_grads)} vs {sorted(r_grads)}")
    rep.row(run, "loss", 0, abs(c_loss - r_loss) / abs(r_loss), abs(t_loss - r_loss) / abs(r_loss))
    for n in r_grads:
        rep.require(np.abs(r_grads[n]).max() > 1e-4, f"{run}: reference grad {n} is ~0")
        rep.row(run, f"grad {n}", GRAD_FLOOR, rel_err(c_grads[n], r_grads[n], GRAD_FLOOR),
                rel_err(t_grads[n], r_grads[n], GRAD_FLOOR))


def check_trajectory(rep, run, f):
    params, x = tensors(f["params"]), torch.from_numpy(f["x"][...])
    y = torch.from_numpy(f["y"][...]).long()
    c_losses = f["losses"][...]
    c_final = {n: f["final_params"][n][...] for n in f["final_params"].keys()}
    r_losses, r_final = trajectory(f, params, x, y, torch.float64)
    t_losses, t_final = trajectory(f, params, x, y, torch.float32)
    rep.require(len(c_losses) == len(r_losses), f"{run}: {len(c_losses)} losses recorded")
    rep.row(run, f"losses[{len(r_losses)}]", 0, rel_err(c_losses, r_losses, 0.0),
            rel_err(t_losses, r_losses, 0.0))
    # The run must go somewhere, or matching it would prove nothing.
    rep.require(r_losses[-1] < 0.98 * r_losses[0],
                f"{run}: reference loss did not fall ({r_losses[0]:.4f} -> {r_losses[-1]:.4f})")
    for n in r_final:
        rep.row(run, f"final {n}", PARAM_FLOOR, rel_err(c_final[n], r_final[n], PARAM_FLOOR),
                rel_err(t_final[n], r_final[n], PARAM_FLOOR))
        moved = rel_err(params[n].numpy(), r_final[n], PARAM_FLOOR)
        rep.require(moved > 1e3 * TOL, f"{run}: {n} barely moved ({moved:.2e})")
    # Discrimination: had cohort also decayed the biases, the check above would have failed.
    _, wrong = trajectory(f, params, x, y, torch.float64, decay_biases=True)
    sep = max(rel_err(wrong[n], r_final[n], PARAM_FLOOR) for n in r_final if n.endswith(".bias"))
    rep.require(sep > 10 * TOL, f"{run}: decaying biases changes the result by only {sep:.2e}")


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    dump = sys.argv[1]
    torch.set_num_threads(1)
    rep = Report()
    with tempfile.TemporaryDirectory(prefix="mlp_torch_") as tmp:
        for name, act, depth, hidden, in_f, classes, batch, seed in MODELS:
            for k, optim in enumerate(OPTIMS):
                run = f"{name}/{optim}"
                out = os.path.join(tmp, f"{name}-{optim}.h5")
                cmd = [dump, out, act, str(depth), str(hidden), str(in_f), str(classes),
                       str(batch), str(seed), optim, str(STEPS)]
                p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True)
                if p.returncode != 0:
                    print(p.stdout)
                    rep.failures.append(f"{run}: mlp_dump exited {p.returncode}")
                    continue
                with h5py.File(out, "r") as f:
                    if k == 0:  # the batch, params and grads are the same for every optimizer
                        check_gradients(rep, name, f)
                    check_trajectory(rep, run, f)
    if rep.failures:
        print(f"\n{len(rep.failures)} failure(s):")
        for msg in rep.failures:
            print("  " + msg)
        return 1
    print("\nmlp_vs_torch: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
