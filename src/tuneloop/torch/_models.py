"""Reference models for small 1-D classification problems (MNIST-1D and alike)."""

from __future__ import annotations

import torch
from torch import nn

_ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "silu": nn.SiLU}


def _activation(name: str) -> nn.Module:
    if name not in _ACTIVATIONS:
        from tuneloop._validation import check_one_of

        check_one_of(name, sorted(_ACTIVATIONS), "activation", "the model")
    return _ACTIVATIONS[name]()


class MLP(nn.Sequential):
    """``depth`` hidden layers of ``width`` units, activation and dropout between them."""

    def __init__(self, in_features: int, n_classes: int, width: int = 100, depth: int = 2,
                 dropout: float = 0.0, activation: str = "relu") -> None:
        layers: list[nn.Module] = []
        size = in_features
        for _ in range(depth):
            layers += [nn.Linear(size, width), _activation(activation)]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            size = width
        layers.append(nn.Linear(size, n_classes))
        super().__init__(*layers)


class CNN(nn.Module):
    """The MNIST-1D paper's CNN: ``depth`` strided 1-D convolutions, then a linear classifier."""

    def __init__(self, length: int, n_classes: int, channels: int = 25, kernel: int = 5, depth: int = 3,
                 dropout: float = 0.0, activation: str = "relu") -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 1
        for i in range(depth):
            layers += [nn.Conv1d(c_in, channels, kernel, stride=2 if i < depth - 1 else 1, padding=kernel // 2),
                       _activation(activation)]
            c_in = channels
        self.features = nn.Sequential(*layers)
        self.dropout = nn.Dropout(dropout)
        with torch.no_grad():
            n_flat = self.features(torch.zeros(1, 1, length)).numel()
        self.head = nn.Linear(n_flat, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            x = x.unsqueeze(1)
        return self.head(self.dropout(self.features(x).flatten(1)))


class GRU(nn.Module):
    """A GRU reading a 1-D signal one value per step; the last hidden state feeds a linear classifier."""

    def __init__(self, length: int, n_classes: int, hidden: int = 64, layers: int = 1) -> None:
        super().__init__()
        self.rnn = nn.GRU(1, hidden, num_layers=layers, batch_first=True)
        self.head = nn.Linear(hidden, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x.unsqueeze(-1) if x.dim() == 2 else x)
        return self.head(out[:, -1])
