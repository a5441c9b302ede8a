"""M modules of one architecture as one stacked model: parameters in one (M, P) buffer, the
forward pass vmapped over members with ``torch.func.functional_call``.

Three kinds of module need help to run under vmap, and get a twin with the same parameter names:

- ``nn.Dropout`` draws its mask from each member's own random stream *outside* vmap (the
  mask enters as a buffer), so a member drops exactly what a sequential run with its seed drops;
- ``nn.GRU`` has no batching rule: it is unrolled over time with the same gate equations;
- BatchNorm's running statistics are updated in place, which vmap cannot do per member: refused.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, vmap

from tuneloop.errors import ConfigError

_PRIMITIVE = (int, float, bool, str, tuple, type(None))


class _MemberDropout(nn.Module):
    """Dropout whose scaled keep-mask (``noise``) is handed in per member; records shapes when probed."""

    probing: list[torch.Size] | None = None

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("noise", torch.empty(0, device="meta"), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if _MemberDropout.probing is not None:
            _MemberDropout.probing.append(x.shape)
            return x
        if not self.training:
            return x
        return x * self.noise  # what torch.dropout does on CPU: input * (bernoulli(1 - p) / (1 - p))


class _UnrolledGRU(nn.Module):
    """``nn.GRU``'s equations step by step (vmap has no rule for the fused kernel); same parameter names."""

    def __init__(self, gru: nn.GRU) -> None:
        super().__init__()
        if gru.bidirectional or gru.dropout or getattr(gru, "proj_size", 0):
            raise ConfigError("The population executor runs nn.GRU without bidirectional, dropout or proj_size; "
                              "use executor='processes' for that model.")
        self.hidden_size, self.num_layers, self.batch_first, self.bias = (
            gru.hidden_size, gru.num_layers, gru.batch_first, gru.bias)
        for name, param in gru.named_parameters():
            self.register_parameter(name, nn.Parameter(torch.empty_like(param, device="meta")))

    def forward(self, x: torch.Tensor, h0: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        batched = x.dim() == 3
        if not batched:
            x = x.unsqueeze(0 if self.batch_first else 1)
        if not self.batch_first:
            x = x.transpose(0, 1)
        finals = []
        for layer in range(self.num_layers):
            w_ih, w_hh = getattr(self, f"weight_ih_l{layer}"), getattr(self, f"weight_hh_l{layer}")
            b_ih = getattr(self, f"bias_ih_l{layer}") if self.bias else None
            b_hh = getattr(self, f"bias_hh_l{layer}") if self.bias else None
            gates_in = nn.functional.linear(x, w_ih, b_ih)  # every time step at once
            h = (x.new_zeros(x.shape[0], self.hidden_size) if h0 is None
                 else (h0[layer] if batched else h0[layer].unsqueeze(0)))
            outputs = []
            for t in range(x.shape[1]):
                i_r, i_z, i_n = gates_in[:, t].chunk(3, -1)
                h_r, h_z, h_n = nn.functional.linear(h, w_hh, b_hh).chunk(3, -1)
                reset = torch.sigmoid(h_r + i_r)
                update = torch.sigmoid(h_z + i_z)
                new = torch.tanh(i_n + h_n * reset)
                h = (h - new) * update + new  # ATen's GRU cell, in its order
                outputs.append(h)
            x = torch.stack(outputs, 1)
            finals.append(h)
        out, h_n = x, torch.stack(finals)
        if not self.batch_first:
            out = out.transpose(0, 1)
        if not batched:
            out, h_n = out.squeeze(0 if self.batch_first else 1), h_n.squeeze(1)
        return out, h_n


def _twin(module: nn.Module) -> nn.Module:
    """A copy on the meta device that vmap can run: dropout and GRU replaced, BatchNorm refused."""
    for name, sub in module.named_modules():
        if isinstance(sub, nn.modules.batchnorm._BatchNorm) or getattr(sub, "track_running_stats", False):
            raise ConfigError(
                f"The population executor cannot train {type(sub).__name__} ({name or 'the model'}): its running "
                f"statistics are updated in place, which vmap cannot do per member. Use nn.LayerNorm or "
                f"nn.GroupNorm, or executor='processes'.")
        if isinstance(sub, (nn.LSTM, nn.RNN)) or (isinstance(sub, nn.RNNBase) and not isinstance(sub, nn.GRU)):
            raise ConfigError(f"The population executor runs nn.GRU but not {type(sub).__name__} ({name}); "
                              f"use executor='processes' for that model.")
        if isinstance(sub, (nn.AlphaDropout, nn.FeatureAlphaDropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d)):
            raise ConfigError(f"The population executor supports nn.Dropout but not {type(sub).__name__} ({name}); "
                              f"use executor='processes' for that model.")
    twin = copy.deepcopy(module).to("meta")
    for name, sub in list(twin.named_modules()):
        if isinstance(sub, nn.Dropout):
            _replace(twin, name, _MemberDropout())
        elif isinstance(sub, nn.GRU):
            _replace(twin, name, _UnrolledGRU(sub))
    return twin


def _replace(root: nn.Module, name: str, new: nn.Module) -> None:
    if not name:
        raise ConfigError("The population executor needs a model that contains layers, not a bare Dropout or GRU.")
    parent, _, leaf = name.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, leaf, new)


def signature(module: nn.Module) -> tuple[Any, ...]:
    """What must be equal for two members to share a population: every submodule's type and
    configuration (simple attributes) and every parameter's and buffer's shape and dtype.
    A dropout rate may differ: it is a per-member hyperparameter."""
    parts: list[Any] = []
    for name, sub in module.named_modules():
        attrs = tuple(sorted((k, v) for k, v in vars(sub).items()
                             if not k.startswith("_") and k != "training" and isinstance(v, _PRIMITIVE)
                             and not (isinstance(sub, nn.Dropout) and k == "p")))
        parts.append((name, type(sub).__module__, type(sub).__qualname__, attrs))
    parts += [(n, tuple(p.shape), str(p.dtype), p.device.type) for n, p in module.named_parameters()]
    parts += [(n, tuple(b.shape), str(b.dtype)) for n, b in module.named_buffers()]
    return tuple(parts)


class StackedModel:
    """Each parameter of M members as one (M, ...) block, and a vmapped forward over them."""

    def __init__(self, nets: Sequence[nn.Module]) -> None:
        first = nets[0]
        self.twin = _twin(first)
        self.names = [n for n, _ in first.named_parameters()]
        with torch.no_grad():
            blocks = [torch.stack([p.detach() for p in ps]) for ps in zip(*(net.parameters() for net in nets))]
        self.buffers = {n: torch.stack([dict(net.named_buffers())[n] for net in nets]) for n, _ in first.named_buffers()}
        self.dropouts = [n for n, m in self.twin.named_modules() if isinstance(m, _MemberDropout)]
        self.rates = {n: [float(net.get_submodule(n).p) for net in nets] for n in self.dropouts}
        self._shapes: dict[tuple[int, ...], list[torch.Size]] = {}
        self.bind(blocks)

    @property
    def size(self) -> int:
        return int(self.blocks[0].shape[0])

    def bind(self, blocks: Sequence[torch.Tensor]) -> None:
        """The blocks become the leaves autograd differentiates and the optimizer updates in place."""
        self.blocks = [b.detach().requires_grad_(True) for b in blocks]
        self.params = dict(zip(self.names, self.blocks))

    def forward(self, x: torch.Tensor, noise: dict[str, torch.Tensor] | None = None, *,
                shared_input: bool = False, train: bool = True) -> torch.Tensor:
        """Every member's output: x is (M, B, ...) (or (B, ...) for all when ``shared_input``)."""
        self.twin.train(train)
        buffers = dict(self.buffers)
        if noise:
            buffers.update({f"{n}.noise": t for n, t in noise.items()})

        def one(params: dict[str, torch.Tensor], bufs: dict[str, torch.Tensor], xb: torch.Tensor) -> torch.Tensor:
            return functional_call(self.twin, (params, bufs), (xb,))

        try:
            return vmap(one, in_dims=(0, 0, None if shared_input else 0))(self.params, buffers, x)
        except RuntimeError as exc:
            if "randomness" in str(exc):
                raise ConfigError(
                    "The model draws random numbers in forward (for example F.dropout or torch.rand), which the "
                    "population executor cannot give each member its own stream for; use nn.Dropout modules, "
                    "or executor='processes'.") from exc
            raise

    def loss_and_grad(self, x: torch.Tensor, y: torch.Tensor, noise: dict[str, torch.Tensor], loss: Any,
                      autocast: Any) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Each member's loss on its batch (M,) and the gradient blocks of their sum."""
        with autocast():
            out = self.forward(x, noise)
            losses = loss.value(out, y)
        grads = torch.autograd.grad(losses.sum(), self.blocks)
        return losses.detach(), [g.contiguous() for g in grads]  # vmap may hand back permuted layouts

    def dropout_shapes(self, x: torch.Tensor) -> list[torch.Size]:
        """The input shape of each dropout call of one member's forward, in call order (probed once per batch shape)."""
        key = tuple(x.shape)
        if key not in self._shapes:
            _MemberDropout.probing = found = []
            try:
                with torch.no_grad():
                    self.twin.train(True)
                    functional_call(self.twin, ({n: p[0] for n, p in self.params.items()},
                                                {n: b[0] for n, b in self.buffers.items()}), (x[0],))
            finally:
                _MemberDropout.probing = None
            if len(found) != len(self.dropouts):
                raise ConfigError("A Dropout module runs more than once per forward pass; the population executor "
                                  "needs each nn.Dropout used once (give each use its own module).")
            self._shapes[key] = found
        return self._shapes[key]

    def noise(self, x: torch.Tensor, generators: Sequence[torch.Generator]) -> dict[str, torch.Tensor]:
        """Each member's dropout masks for this batch, drawn from its own stream in forward order."""
        if not self.dropouts:
            return {}
        out = {}
        for name, shape in zip(self.dropouts, self.dropout_shapes(x)):
            mask = torch.empty((self.size, *shape), dtype=x.dtype, device=x.device)
            for m, gen in enumerate(generators):
                p = self.rates[name][m]
                if p == 1:
                    mask[m].zero_()
                elif p > 0:
                    mask[m].bernoulli_(1 - p, generator=gen).div_(1 - p)
                else:
                    mask[m].fill_(1)
            out[name] = mask
        return out

    def select(self, keep: Sequence[int]) -> None:
        """Keep only the members at ``keep``: parameters, buffers and dropout rates shrink together."""
        index = torch.tensor(list(keep), dtype=torch.long, device=self.blocks[0].device)
        self.buffers = {n: b.index_select(0, index) for n, b in self.buffers.items()}
        self.rates = {n: [r[i] for i in keep] for n, r in self.rates.items()}
        self.bind([b.detach().index_select(0, index) for b in self.blocks])

    def member(self, m: int, blocks: Sequence[torch.Tensor] | None = None) -> list[torch.Tensor]:
        """Member m's parameters (copies), from the live blocks or from ``blocks`` (e.g. the best epoch's)."""
        return [b[m].detach().clone() for b in (blocks if blocks is not None else self.blocks)]

    @torch.no_grad()
    def set_member(self, m: int, values: Sequence[torch.Tensor]) -> None:
        for b, v in zip(self.blocks, values):
            b[m] = v

    def state_dict(self, values: Sequence[torch.Tensor], net: nn.Module) -> dict[str, torch.Tensor]:
        """``net.state_dict()`` with one member's parameter ``values``."""
        state = {k: v.clone() for k, v in net.state_dict().items()}
        for name, value in zip(self.names, values):
            state[name] = value.clone().to(state[name].dtype)
        return state


_ACTIVATIONS = (nn.ReLU, nn.GELU, nn.Tanh, nn.SiLU, nn.Identity)


def is_plain_mlp(net: nn.Module) -> bool:
    """An ``nn.Sequential`` (exactly) of Linear, ReLU/GELU/Tanh/SiLU/Identity and Dropout layers."""
    return (type(net) in (nn.Sequential,) or (isinstance(net, nn.Sequential) and type(net).forward is nn.Sequential.forward)) \
        and any(type(m) is nn.Linear for m in net) and all(type(m) in (nn.Linear, nn.Dropout, *_ACTIVATIONS) for m in net)


class StackedMLP(StackedModel):
    """The fast path for plain MLPs: batched matmuls forward and a hand-written backward that
    writes gradients into preallocated blocks (no autograd graph, activations in place).

    Members may differ in their hidden widths: each block is as wide as its widest member and a
    narrower member's weights sit in its leading corner, the rest zero. That is exact: a padded
    unit's input weights and bias are zero, so it outputs activation(0) = 0 (ReLU, GELU, tanh,
    SiLU); its output weights meet only that zero, so every padded gradient is zero and every
    optimizer leaves a zero with a zero gradient where it is."""

    def __init__(self, nets: Sequence[nn.Module]) -> None:
        first = nets[0]
        self.twin = None
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
                self.rates[name] = [float(net.get_submodule(name).p) for net in nets]
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

    def noise(self, x: torch.Tensor, generators: Sequence[torch.Generator]) -> dict[str, torch.Tensor]:
        """Each member's dropout masks, drawn at its own width from its own stream (padding: ones)."""
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


def _features_before(net: nn.Module, name: str) -> int:
    """The feature count entering the layer ``name`` of a plain MLP (for its dropout masks)."""
    features = None
    for child_name, module in net.named_children():
        if child_name == name:
            break
        if isinstance(module, nn.Linear):
            features = module.out_features
    if features is None:  # dropout before the first Linear: the input features
        features = next(m for m in net if isinstance(m, nn.Linear)).in_features
    return int(features)


def padded_signature(net: nn.Module) -> tuple[Any, ...]:
    """A plain MLP's bucket key when hidden widths may differ: widths rounded up to a power of two
    (members within 2x of each other share a population), everything else exact."""
    linears = [m for m in net if type(m) is nn.Linear]
    parts: list[Any] = []
    for m in net:
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
