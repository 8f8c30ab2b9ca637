"""Architecture knobs shared by the built-in families: the hidden activation and the weight init.

One definition of each name, used by the families (models/mlp.py, cnn1d.py, transformer.py), the
study loader (config.py refuses an unknown name at load) and the factor comparison (`[search] factor
= "activation"` / `"init"`). A family's default activation (ReLU for mlp and cnn1d, GELU for the
transformer's feed-forward block) is kept when none is given, so older trial specs are unchanged.
"""

from __future__ import annotations

import torch
from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "gelu": nn.GELU,
}

# "default": torch's own (kaiming_uniform with a = sqrt(5), i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)));
# "xavier": Glorot & Bengio 2010, U(+-sqrt(6 / (fan_in + fan_out)));
# "kaiming": He et al. 2015, N(0, 2 / fan_in), derived for ReLU;
# "normal": N(0, 1), the deliberately poor init (variance grows by fan_in per layer).
# The non-default inits set biases to 0, as those papers do.
INITS = ("default", "xavier", "kaiming", "normal")


def activation(name: str | None, default: str = "relu") -> nn.Module:
    """A fresh activation module by name (None: the family's default)."""
    name = default if name is None else name
    if name not in ACTIVATIONS:
        raise ValueError(f"activation: given {name!r}; allowed: {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


@torch.no_grad()
def apply_init(model: nn.Module, name: str | None) -> nn.Module:
    """Re-initialise the weights of every Linear, Conv1d and Conv2d layer of `model` by `name` (see INITS).
    Normalisation layers and embeddings keep their own init."""
    if name in (None, "default"):
        return model
    if name not in INITS:
        raise ValueError(f"init: given {name!r}; allowed: {', '.join(INITS)}")
    for m in model.modules():
        if not isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d)):
            continue
        if name == "xavier":
            nn.init.xavier_uniform_(m.weight)
        elif name == "kaiming":
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
        else:
            nn.init.normal_(m.weight, 0.0, 1.0)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    return model
