"""The fast path for plain MLPs (``nn.Sequential`` of Linear, activations and Dropout): batched
matrix products and a hand-written backward, members of different hidden widths padded into one
population where that is exact."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import torch
from torch import nn

from tuneloop.torch._stacked import StackedModel, drawn_masks, dropout_rate

_ACTIVATIONS = (nn.ReLU, nn.GELU, nn.Tanh, nn.SiLU, nn.Identity)


def is_plain_mlp(net: nn.Module) -> bool:
    """An ``nn.Sequential`` (exactly) of Linear, ReLU/GELU/Tanh/SiLU/Identity and Dropout layers."""
    return (isinstance(net, nn.Sequential) and type(net).forward is nn.Sequential.forward
            and any(type(m) is nn.Linear for m in net)
            and all(type(m) in (nn.Linear, nn.Dropout, *_ACTIVATIONS) for m in net))


class StackedMLP(StackedModel):
    """The fast path for plain MLPs: batched matmuls forward and a hand-written backward that
    writes gradients into preallocated blocks (no autograd graph, activations in place).

    Members may differ in their hidden widths: each block is as wide as its widest member and a
    narrower member's weights sit in its leading corner, the rest zero. That is exact: a padded
    unit's input weights and bias are zero, so it outputs activation(0) = 0 (ReLU, GELU, tanh,
    SiLU); its output weights meet only that zero, so every padded gradient is zero and every
    optimizer leaves a zero with a zero gradient where it is."""

    def __init__(self, nets: Sequence[nn.Module]) -> None:
        first = nets[0]  # no twin (StackedModel's is for functional_call): the forward pass is written out
        self.names = [n for n, _ in first.named_parameters()]
        values = [[p.detach() for p in net.parameters()] for net in nets]
        self.member_shapes = [[tuple(p.shape) for p in ps] for ps in values]
        full = [tuple(max(dims) for dims in zip(*(shapes[k] for shapes in self.member_shapes)))
                for k in range(len(self.names))]
        blocks = []
        for k, shape in enumerate(full):
            block = values[0][k].new_zeros((len(nets), *shape))
            for m, ps in enumerate(values):
                block[m][region(ps[k].shape)] = ps[k]
            blocks.append(block)
        self.buffers: dict[str, torch.Tensor] = {}
        self.layers: list[tuple[str, Any]] = []
        self.dropouts, self.rates, self.widths = [], {}, {}
        index = {n: k for k, n in enumerate(self.names)}
        for name, module in first.named_children():
            if isinstance(module, nn.Linear):
                self.layers.append(("linear", (index[f"{name}.weight"], index.get(f"{name}.bias"))))
            elif isinstance(module, nn.Dropout):
                self.layers.append(("dropout", name))
                self.dropouts.append(name)
                self.rates[name] = [dropout_rate(net, name) for net in nets]
                self.widths[name] = [_features_before(net, name) for net in nets]  # each member's own
            elif isinstance(module, nn.GELU):
                self.layers.append(("gelu", module.approximate))
            elif not isinstance(module, nn.Identity):
                self.layers.append((type(module).__name__.lower(), None))
        self.bind(blocks)

    def bind(self, blocks: Sequence[torch.Tensor]) -> None:
        self.blocks = [b.detach() for b in blocks]
        self.params = dict(zip(self.names, self.blocks))
        self._grads = [torch.empty_like(b) for b in self.blocks]

    def noise(self, x: torch.Tensor, generators: Sequence[torch.Generator], exact: bool = False
              ) -> dict[str, torch.Tensor]:
        """Each member's dropout masks, drawn at its own width from its own stream (padding: ones);
        ``exact``: as ``nn.Dropout`` draws them, else :func:`drawn_masks`."""
        if not exact:
            shapes: dict[str, list[tuple[int, ...]]] = {n: [(x.shape[1], w) for w in self.widths[n]]
                                                        for n in self.dropouts}
            return drawn_masks(self.dropouts, self.rates, shapes, generators, x.dtype, x.device)
        out = {}
        for name in self.dropouts:
            widths = self.widths[name]
            mask = torch.ones((self.size, x.shape[1], max(widths)), dtype=x.dtype, device=x.device)
            for m, gen in enumerate(generators):
                p, part = self.rates[name][m], mask[m, :, :widths[m]]
                if p == 1:
                    part.zero_()
                elif p > 0:
                    part.bernoulli_(1 - p, generator=gen).div_(1 - p)
            out[name] = mask
        return out

    def select(self, keep: Sequence[int]) -> None:
        super().select(keep)
        self.member_shapes = [self.member_shapes[i] for i in keep]
        self.widths = {n: [w[i] for i in keep] for n, w in self.widths.items()}

    def member(self, m: int, blocks: Sequence[torch.Tensor] | None = None) -> list[torch.Tensor]:
        return [b[m][region(shape)].detach().clone()
                for b, shape in zip(blocks if blocks is not None else self.blocks, self.member_shapes[m])]

    @torch.no_grad()
    def set_member(self, m: int, values: Sequence[torch.Tensor]) -> None:
        for b, v in zip(self.blocks, values):
            b[m][region(v.shape)] = v


    @torch.no_grad()
    def forward(self, x: torch.Tensor, noise: dict[str, torch.Tensor] | None = None, *,
                shared_input: bool = False, train: bool = True) -> torch.Tensor:
        h = x.expand(self.size, *x.shape) if shared_input else x
        fresh = False  # h is our own buffer (not the caller's input): activations may work in place
        for kind, arg in self.layers:
            if kind == "linear":
                w, b = self.blocks[arg[0]], (self.blocks[arg[1]] if arg[1] is not None else None)
                h = torch.baddbmm(b.unsqueeze(1), h, w.transpose(1, 2)) if b is not None else torch.bmm(h, w.transpose(1, 2))
                fresh = True
                continue
            if kind == "dropout":
                if not (train and noise):
                    continue
                h = h * noise[arg]
            elif kind in ("relu", "tanh") and fresh:
                h = h.relu_() if kind == "relu" else h.tanh_()
            else:
                h = _activate(kind, arg, h)
            fresh = True
        return h

    @torch.no_grad()
    def loss_and_grad(self, x: torch.Tensor, y: torch.Tensor, noise: dict[str, torch.Tensor], loss: Any,
                      autocast: Any) -> tuple[torch.Tensor, list[torch.Tensor]]:
        saved: list[Any] = []
        h = x
        for kind, arg in self.layers:
            if kind == "linear":
                w, b = self.blocks[arg[0]], (self.blocks[arg[1]] if arg[1] is not None else None)
                saved.append(h)
                h = torch.baddbmm(b.unsqueeze(1), h, w.transpose(1, 2)) if b is not None else torch.bmm(h, w.transpose(1, 2))
            elif kind == "dropout":
                saved.append(noise[arg])
                h = h * noise[arg]
            elif kind == "relu":
                h = h.relu_()
                saved.append(h)
            elif kind == "tanh":
                h = h.tanh_()
                saved.append(h)
            else:
                saved.append(h)
                h = _activate(kind, arg, h)
        losses, d = loss.value_and_grad(h, y)
        first_linear = next(i for i, (kind, _) in enumerate(self.layers) if kind == "linear")
        for i in range(len(self.layers) - 1, first_linear - 1, -1):
            kind, arg = self.layers[i]
            keep = saved[i]
            if kind == "linear":
                torch.bmm(d.transpose(1, 2), keep, out=self._grads[arg[0]])
                if arg[1] is not None:
                    torch.sum(d, 1, out=self._grads[arg[1]])
                if i > first_linear:
                    d = torch.bmm(d, self.blocks[arg[0]])
            elif kind == "dropout":
                d.mul_(keep)
            elif kind == "relu":
                d = torch.ops.aten.threshold_backward(d, keep, 0)  # 10x faster here than masked_fill_
            elif kind == "tanh":
                d.mul_(1 - keep * keep)
            elif kind == "gelu":
                d = torch.ops.aten.gelu_backward(d, keep, approximate=arg)
            elif kind == "silu":
                d = torch.ops.aten.silu_backward(d, keep)
        return losses, self._grads


def region(shape: Sequence[int]) -> tuple[slice, ...]:
    """The leading corner of a padded block where a member of this shape lives."""
    return tuple(slice(0, d) for d in shape)


def _layers(net: nn.Module) -> list[nn.Module]:
    """A plain MLP's layers in order, repeats included (:func:`is_plain_mlp` made sure it is an nn.Sequential)."""
    return list(cast(nn.Sequential, net))


def _features_before(net: nn.Module, name: str) -> int:
    """The feature count entering the layer ``name`` of a plain MLP (for its dropout masks)."""
    features = None
    for child_name, module in net.named_children():
        if child_name == name:
            break
        if isinstance(module, nn.Linear):
            features = module.out_features
    if features is None:  # dropout before the first Linear: the input features
        features = next(m for m in _layers(net) if isinstance(m, nn.Linear)).in_features
    return int(features)


def padded_signature(net: nn.Module) -> tuple[Any, ...]:
    """A plain MLP's bucket key when hidden widths may differ: widths rounded up to a power of two
    (members within 2x of each other share a population), everything else exact."""
    linears = [m for m in _layers(net) if type(m) is nn.Linear]
    parts: list[Any] = []
    for m in _layers(net):
        if type(m) is nn.Linear:
            fan_in = m.in_features if m is linears[0] else 1 << (m.in_features - 1).bit_length()
            fan_out = m.out_features if m is linears[-1] else 1 << (m.out_features - 1).bit_length()
            parts.append(("linear", fan_in, fan_out, m.bias is not None, str(m.weight.dtype), m.weight.device.type))
        elif type(m) is nn.GELU:
            parts.append(("gelu", m.approximate))
        else:
            parts.append((type(m).__name__,))
    return ("padded-mlp", *parts)


def _activate(kind: str, arg: Any, h: torch.Tensor) -> torch.Tensor:
    if kind == "relu":
        return torch.relu(h)
    if kind == "tanh":
        return torch.tanh(h)
    if kind == "gelu":
        return nn.functional.gelu(h, approximate=arg)
    return nn.functional.silu(h)


def stack(nets: Sequence[nn.Module], *, fast: bool = True) -> StackedModel:
    """The stacked model for ``nets``: the hand-written fast path for plain MLPs, vmap otherwise."""
    return StackedMLP(nets) if fast and is_plain_mlp(nets[0]) else StackedModel(nets)
