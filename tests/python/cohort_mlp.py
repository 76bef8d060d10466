"""The cohort MLP as a torch module, with cohort's parameter names (layers.{i}.weight/bias), so
that a checkpoint's /model tensors load with load_state_dict. Shared by the reference tests."""
import torch
import torch.nn.functional as F


class MLP(torch.nn.Module):
    def __init__(self, in_features, hidden, depth, classes, act):
        super().__init__()
        dims = [in_features] + [hidden] * depth + [classes]
        self.layers = torch.nn.ModuleList(
            torch.nn.Linear(dims[i], dims[i + 1]) for i in range(depth + 1))
        self.act = act

    def forward(self, x):
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i + 1 < len(self.layers):
                # cohort's GELU is the tanh approximation (kernels/cpu/activation.c)
                x = F.relu(x) if self.act == "relu" else F.gelu(x, approximate="tanh")
        return x
