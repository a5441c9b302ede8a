"""M modules of one architecture as one stacked model: parameters in one (M, P) buffer, the
forward pass vmapped over members with ``torch.func.functional_call``.

Three kinds of module need help to run under vmap, and get a twin with the same parameter names:

- ``nn.Dropout`` draws its mask from each member's own random stream *outside* vmap (the
  mask enters as a buffer): by default one uniform draw per member and step for all its dropout
  layers, compared with each member's keep rate in one batched call per layer
  (:func:`drawn_masks`); with ``exact=True`` one ``bernoulli_`` per member and layer, as
  ``nn.Dropout`` draws it, so a member drops exactly what a sequential run with its seed drops;
- ``nn.GRU`` has no batching rule: it is unrolled over time with the same gate equations;
- BatchNorm's running statistics are updated in place, which vmap cannot do per member: refused.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any, cast

import torch
from torch import nn
from torch.func import functional_call, vmap

from tuneloop.errors import ConfigError

_PRIMITIVE = (int, float, bool, str, tuple, type(None))


class _MemberDropout(nn.Module):
    """Dropout whose scaled keep-mask (``noise``) is handed in per member; records shapes when probed."""

    probing: list[torch.Size] | None = None
    noise: torch.Tensor  # the buffer registered below, for the type checker (Module.__getattr__ is untyped)

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


def drawn_masks(names: Sequence[str], rates: dict[str, list[float]], shapes: dict[str, list[tuple[int, ...]]],
                generators: Sequence[torch.Generator], dtype: torch.dtype, device: torch.device
                ) -> dict[str, torch.Tensor]:
    """Scaled keep-masks of every member for the dropout layers ``names`` (forward order), member m's
    of shape ``shapes[name][m]`` in the leading corner of a block as large as the largest (the rest
    ones). Each member draws one ``uniform_`` from its own generator for all its layers (so its masks
    depend on its seed, step and own shapes only, not on the other members), and one comparison per
    layer turns every member's draws into masks: on a CPU a Bernoulli draw costs about 3x a uniform
    one, which is most of what dropout cost the population. Not the draws ``nn.Dropout`` makes: the
    sequential-equal masks are ``exact=True``'s."""
    n_members = len(generators)
    sizes = [[math.prod(shapes[n][m]) for n in names] for m in range(n_members)]
    draws = torch.empty((n_members, max(sum(s) for s in sizes)), dtype=torch.float32, device=device)
    for m, gen in enumerate(generators):
        draws[m, :sum(sizes[m])].uniform_(generator=gen)
    out = {}
    start = [0] * n_members
    for k, name in enumerate(names):
        member_shapes = shapes[name]
        keep = [1.0 - p for p in rates[name]]
        scale = [1.0 / q if q > 0 else 0.0 for q in keep]
        full = tuple(max(dims) for dims in zip(*member_shapes))
        if all(s == full for s in member_shapes) and all(b == start[0] for b in start):
            ones = [1] * len(full)
            view = draws[:, start[0]:start[0] + sizes[0][k]].view(n_members, *full)
            keep_col = torch.tensor(keep, dtype=torch.float32, device=device).view(-1, *ones)
            scale_col = torch.tensor(scale, dtype=dtype, device=device).view(-1, *ones)
            # floor(u + keep) is 1 with probability keep (u uniform in [0, 1)): in place, no bool pass
            out[name] = view.add_(keep_col).floor_().to(dtype).mul_(scale_col)
        else:  # members of different widths: each its own corner
            mask = torch.ones((n_members, *full), dtype=dtype, device=device)
            for m, shape in enumerate(member_shapes):
                part = mask[m][tuple(slice(0, d) for d in shape)]
                part.copy_(draws[m, start[m]:start[m] + sizes[m][k]].view(shape).add_(keep[m]).floor_()).mul_(scale[m])
            out[name] = mask
        start = [b + sizes[m][k] for m, b in enumerate(start)]
    return out


def dropout_rate(net: nn.Module, name: str) -> float:
    """The rate ``p`` of the ``nn.Dropout`` at ``name`` (a name where the twin holds a _MemberDropout)."""
    return float(cast(nn.Dropout, net.get_submodule(name)).p)


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
        self.rates = {n: [dropout_rate(net, n) for net in nets] for n in self.dropouts}
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
            found: list[torch.Size] = []
            _MemberDropout.probing = found
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

    def noise(self, x: torch.Tensor, generators: Sequence[torch.Generator], exact: bool = False
              ) -> dict[str, torch.Tensor]:
        """Each member's dropout masks for this batch, drawn from its own stream in forward order
        (``exact``: as ``nn.Dropout`` draws them, else :func:`drawn_masks`)."""
        if not self.dropouts:
            return {}
        if not exact:
            shapes = {n: [tuple(s)] * self.size for n, s in zip(self.dropouts, self.dropout_shapes(x))}
            return drawn_masks(self.dropouts, self.rates, shapes, generators, x.dtype, x.device)
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
