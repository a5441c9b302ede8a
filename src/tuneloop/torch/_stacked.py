"""M modules of one architecture (or of Linear/Conv sizes padded to the largest member's, see
:mod:`tuneloop.torch._padding`) as one stacked model: each parameter one (M, ...) block, the
forward pass vmapped over members with ``torch.func.functional_call``.

Three kinds of module need help to run under vmap, and get a twin with the same parameter names:

- ``nn.Dropout`` draws its mask from each member's own random stream *outside* vmap (the
  mask enters as a buffer): by default one draw of random bits per member and step for all its dropout
  layers, compared with each member's keep rate in one batched call per layer
  (:func:`drawn_masks`); with ``exact=True`` one ``bernoulli_`` per member and layer, as
  ``nn.Dropout`` draws it, so a member drops exactly what a sequential run with its seed drops;
- ``nn.GRU`` has no batching rule: it is unrolled over time with the same gate equations;
- BatchNorm's running statistics are updated in place, which vmap cannot do per member: refused.
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Iterator, Sequence
from typing import Any, cast

import torch
from torch import nn
from torch.func import functional_call, vmap

from tuneloop.errors import ConfigError
from tuneloop.torch._padding import config, layout, masks, resize


class _MemberDropout(nn.Module):
    """Dropout whose scaled keep-mask (``noise``) is handed in per member."""

    noise: torch.Tensor  # the buffer registered below, for the type checker (Module.__getattr__ is untyped)

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("noise", torch.empty(0, device="meta"), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
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
    ones). Each member draws its random bits for all its layers in one call on its own generator (so
    its masks depend on its seed, step and own shapes only, not on the other members), and one
    comparison per layer turns every member's bits into masks. The bits come as 64-bit integers, four
    16-bit draws each (``random_`` over the full 64-bit range): 1.9 ms for 48 members' two 64 x 128
    masks on this project's CPU, against 2.7 ms for the 31-bit draws this used before and about 3x
    that for one float per unit (a Bernoulli draw costs 3x a float one there); a unit is kept when
    its 16 bits, read as a signed number, fall below ``round(keep * 2**16) - 2**15``, and scaled by the
    inverse of that kept share (keep rates resolved to 2**-16: a rate of 0.3 keeps 45,875 / 65,536,
    scaled by 65,536 / 45,875). Not the draws ``nn.Dropout`` makes: the
    sequential-equal masks are ``exact=True``'s. A member draws nothing for a layer whose rate is 0
    (its mask there is ones), so ``nn.Dropout(0.0)`` costs no draws."""
    n_members = len(generators)
    sizes = [[math.prod(shapes[n][m]) if rates[n][m] != 0 else 0 for n in names] for m in range(n_members)]
    longest = max(sum(s) for s in sizes)
    bits = torch.empty((n_members, (longest + 3) // 4), dtype=torch.int64, device=device)
    for m, gen in enumerate(generators):
        if sum(sizes[m]):
            bits[m, :(sum(sizes[m]) + 3) // 4].random_(-(2**63), None, generator=gen)  # all 64 bits random
    draws = bits.view(torch.int16)[:, :longest]  # (M, 4K): 16 random bits each, a signed number
    out = {}
    start = [0] * n_members
    for k, name in enumerate(names):
        member_shapes = shapes[name]
        # a unit is kept when its draw < below: count = below + 2**15 of the 2**16 draws; the scale is the kept
        # share's inverse, so every mask's mean is 1 (a rate p > 1 - 2**-17 keeps none, as p = 1; p = 0 draws nothing)
        counts = [min(round((1.0 - p) * 2**16), 2**16 - 1) for p in rates[name]]
        scale = [2**16 / c if c > 0 else 0.0 for c in counts]
        below = [c - 2**15 for c in counts]
        full = tuple(max(dims) for dims in zip(*member_shapes))
        if not any(sizes[m][k] for m in range(n_members)):  # nobody drops here
            out[name] = torch.ones((n_members, *full), dtype=dtype, device=device)
        elif (all(s == full for s in member_shapes) and all(b == start[0] for b in start)
              and all(sizes[m][k] == sizes[0][k] for m in range(n_members))):
            ones = [1] * len(full)
            view = draws[:, start[0]:start[0] + sizes[0][k]].view(n_members, *full)
            below_col = torch.tensor(below, dtype=torch.float32, device=device).view(-1, *ones)
            scale_col = torch.tensor(scale, dtype=dtype, device=device).view(-1, *ones)
            # kept (1) where draw < below, else 0, in float arithmetic (exact: 17-bit integers): 8x faster on a
            # CPU than comparing the int16s (and torch.where slower still); then the member's scale
            kept = torch.sub(below_col, view).clamp_(0, 1)
            out[name] = (kept if dtype == torch.float32 else kept.to(dtype)).mul_(scale_col)
        else:  # members of different widths: each its own corner
            mask = torch.ones((n_members, *full), dtype=dtype, device=device)
            for m, shape in enumerate(member_shapes):
                if not sizes[m][k]:
                    continue  # rate 0 (or no such layer): ones
                part = mask[m][tuple(slice(0, d) for d in shape)]
                part.copy_(draws[m, start[m]:start[m] + sizes[m][k]].view(shape) < below[m]).mul_(scale[m])
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
    parts: list[Any] = [(name, type(sub).__module__, type(sub).__qualname__, config(sub))
                        for name, sub in module.named_modules()]
    parts += [(n, tuple(p.shape), str(p.dtype), p.device.type) for n, p in module.named_parameters()]
    parts += [(n, tuple(b.shape), str(b.dtype)) for n, b in module.named_buffers()]
    return tuple(parts)


class StackedModel:
    """Each parameter of M members as one (M, ...) block, and a vmapped forward over them.

    Members may differ in Linear features, Conv channels and centred odd kernel sizes
    (:mod:`tuneloop.torch._padding`): each block is as large as its largest member, member m's j-th
    own parameter lives at ``blocks[k][m][where]`` for ``(k, where) = placement[m][j]``, the rest is
    zero, and every gradient is masked to the members' places before clipping and the optimizer.
    The twin is then the padded architecture; :meth:`exact_members` checks that it reproduces
    each member's own module before such a population trains."""

    def __init__(self, nets: Sequence[nn.Module]) -> None:
        first = nets[0]
        self.twin = _twin(first)
        self.names = [n for n, _ in first.named_parameters()]
        values = [[p.detach() for p in net.parameters()] for net in nets]
        self.member_shapes = [[tuple(p.shape) for p in ps] for ps in values]
        full, self.placement = layout(first, self.member_shapes)
        with torch.no_grad():
            if all(shapes == self.member_shapes[0] for shapes in self.member_shapes):
                blocks = [torch.stack(ps) for ps in zip(*values)]
            else:
                resize(self.twin, nets, full)
                blocks = [values[0][k].new_zeros((len(nets), *shape)) for k, shape in enumerate(full)]
                for m, ps in enumerate(values):
                    for (k, where), v in zip(self.placement[m], ps):
                        blocks[k][m][where] = v
        self.buffers = {n: torch.stack([dict(net.named_buffers())[n] for net in nets]) for n, _ in first.named_buffers()}
        self.dropouts = [n for n, m in self.twin.named_modules() if isinstance(m, _MemberDropout)]
        self.rates = {n: [dropout_rate(net, n) for net in nets] for n in self.dropouts}
        archs: dict[tuple[tuple[int, ...], ...], int] = {}
        self.architecture = [archs.setdefault(tuple(shapes), len(archs)) for shapes in self.member_shapes]
        self._archs = archs  # the architectures the blocks and the twin were built (and probed) for
        self._nets: dict[int, nn.Module] = {}  # one member's own module per architecture (its dropout shapes)
        for m, a in enumerate(self.architecture):
            self._nets.setdefault(a, nets[m])
        self._shapes: dict[tuple[Any, ...], dict[str, tuple[int, ...]]] = {}
        self._per_member = ("member_shapes", "placement", "architecture")  # lists select() keeps in step
        self.bind(blocks)
        self._masks = masks(self.blocks, self.placement)  # block -> (M, ...) 1/0, where some member is padded

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
        """Each member's loss on its batch (M,) and the gradient blocks of their sum (zero in padding)."""
        with autocast():
            out = self.forward(x, noise)
            losses = loss.value(out, y)
        grads = [g.contiguous() for g in torch.autograd.grad(losses.sum(), self.blocks)]  # vmap may permute layouts
        for k, mask in self._masks.items():  # padded kernel taps see inputs: their gradients must not move them
            grads[k].mul_(mask)
        return losses.detach(), grads

    def dropout_shapes(self, x: torch.Tensor) -> list[torch.Size]:
        """The input shape of each dropout layer of the first member's forward (x is (M, B, ...))."""
        shapes = self.member_dropout_shapes(x)
        return [torch.Size(shapes[n][0]) for n in self.dropouts]

    def member_dropout_shapes(self, x: torch.Tensor) -> dict[str, list[tuple[int, ...]]]:
        """Each member's own input shape at each dropout layer (x is (M, B, ...)): probed on the member's
        own module, once per architecture and batch shape."""
        own = {a: self._own_shapes(a, x[0]) for a in set(self.architecture)}
        return {n: [own[a][n] for a in self.architecture] for n in self.dropouts}

    def _own_shapes(self, arch: int, xb: torch.Tensor) -> dict[str, tuple[int, ...]]:
        """One forward of architecture ``arch``'s own module on one member's batch ``xb``, in training mode
        with its dropout layers off (they draw nothing), recording what enters each dropout layer."""
        key = (arch, tuple(xb.shape), xb.dtype)
        if key not in self._shapes:
            net = self._nets[arch]
            found: dict[str, list[tuple[int, ...]]] = {n: [] for n in self.dropouts}
            layers = {n: net.get_submodule(n) for n in self.dropouts}
            flags = [(module, module.training) for module in net.modules()]
            hooks = [layer.register_forward_hook(lambda _, __, out, n=n: found[n].append(tuple(out.shape)))
                     for n, layer in layers.items()]
            try:
                net.train(True)
                for layer in layers.values():
                    layer.train(False)
                with torch.no_grad():
                    net(xb)
            finally:
                for hook in hooks:
                    hook.remove()
                for module, flag in flags:
                    module.training = flag
            if any(len(shapes) != 1 for shapes in found.values()):
                raise ConfigError("A Dropout module runs more than once per forward pass (or not at all); the "
                                  "population executor needs each nn.Dropout used once (give each use its own module).")
            self._shapes[key] = {n: shapes[0] for n, shapes in found.items()}
        return self._shapes[key]

    def noise(self, x: torch.Tensor, generators: Sequence[torch.Generator], exact: bool = False
              ) -> dict[str, torch.Tensor]:
        """Each member's dropout masks for this batch, drawn at its own shapes (the leading corner of a
        mask as large as the largest; the rest ones) from its own stream in forward order (``exact``: as
        ``nn.Dropout`` draws them, else :func:`drawn_masks`)."""
        if not self.dropouts:
            return {}
        shapes = self.member_dropout_shapes(x)
        # the padded activation's shape: the largest over every architecture the blocks were built for (the
        # widest member may have left; the blocks, and so the twin's activations, keep its size)
        built = [self._own_shapes(a, x[0]) for a in self._nets]
        full = {n: tuple(max(dims) for dims in zip(*(b[n] for b in built))) for n in self.dropouts}
        dtype = x.dtype if x.is_floating_point() else self.blocks[0].dtype  # token ids in, float masks out
        if not exact:
            masks = drawn_masks(self.dropouts, self.rates, shapes, generators, dtype, x.device)
            for name, mask in masks.items():
                if tuple(mask.shape[1:]) != full[name]:
                    grown = torch.ones((self.size, *full[name]), dtype=mask.dtype, device=mask.device)
                    grown[(slice(None), *_corner(mask.shape[1:]))] = mask
                    masks[name] = grown
            return masks
        out = {}
        for name in self.dropouts:
            own = shapes[name]
            mask = torch.ones((self.size, *full[name]), dtype=dtype, device=x.device)
            for m, gen in enumerate(generators):
                p, part = self.rates[name][m], mask[m][_corner(own[m])]
                if p == 1:
                    part.zero_()
                elif p > 0:
                    part.bernoulli_(1 - p, generator=gen).div_(1 - p)
            out[name] = mask
        return out

    @torch.no_grad()
    def exact_members(self, x: torch.Tensor, seed: int = 0) -> list[bool]:
        """Whether the padded twin reproduces each member's own module on ``x`` (one member's batch),
        with every module in eval mode: on the member's parameters, then on the same perturbed (a bias
        initialized to zero hides what a trained one shows) with random dropout masks at the member's
        own shapes (the leading corner of the padded ones). Outputs must agree to a relative 1e-5 in
        float32 (1e-9 in float64). Members of one architecture share the verdict; all pass when
        nothing is padded. Anything that fails (a shape, an exception) is a no."""
        if not self._masks and all(s == self.member_shapes[0] for s in self.member_shapes):
            return [True] * self.size
        gen = torch.Generator().manual_seed(seed)  # not the global stream: members' streams are set already
        try:
            full = {n: tuple(max(dims) for dims in zip(*(self._own_shapes(a, x)[n] for a in self._nets)))
                    for n in self.dropouts}
        except Exception:  # noqa: BLE001 - a module the engine cannot probe trains unpadded
            return [False] * self.size
        with _full_precision(x.device):
            verdict = {a: self._reproduces(self.architecture.index(a), x, full, gen) for a in self._nets}
        return [verdict[a] for a in self.architecture]

    def _reproduces(self, m: int, x: torch.Tensor, full: dict[str, tuple[int, ...]], gen: torch.Generator) -> bool:
        net = self._nets[self.architecture[m]]
        own = self.member(m)
        noisy = [v + 0.1 * torch.randn(v.shape, generator=gen, dtype=torch.float64).to(v) for v in own]
        bufs = {n: b[m] for n, b in self.buffers.items()}
        flags = [(module, module.training) for module in (*net.modules(), *self.twin.modules())]
        hooks = []
        try:
            net.eval()
            self.twin.eval()
            for values, drop in ((own, False), (noisy, True)):
                masks_own, noise = {}, {}
                for n in self.dropouts if drop else ():
                    shape = self._own_shapes(self.architecture[m], x)[n]
                    masks_own[n] = torch.randint(0, 2, shape, generator=gen).to(own[0]) * 2.0
                    noise[n] = torch.ones(full[n], dtype=own[0].dtype, device=x.device)
                    noise[n][_corner(shape)] = masks_own[n]
                    self.twin.get_submodule(n).train(True)
                    layer = net.get_submodule(n)
                    hooks.append(layer.register_forward_hook(lambda _, __, out, mask=masks_own[n]: out * mask))
                ref = functional_call(net, dict(zip(self.names, values)), (x,))
                padded = {name: b[m].detach().clone() for name, b in self.params.items()}
                for (k, where), v in zip(self.placement[m], values):
                    padded[self.names[k]][where] = v
                out = functional_call(self.twin, (padded, {**bufs, **{f"{n}.noise": t for n, t in noise.items()}}),
                                      (x,))
                if not _close(out, ref):
                    return False
            return True
        except Exception:  # noqa: BLE001 - whatever the twin cannot run trains unpadded
            return False
        finally:
            for hook in hooks:
                hook.remove()
            for module, flag in flags:
                module.training = flag

    def select(self, keep: Sequence[int]) -> None:
        """Keep only the members at ``keep``: parameters, buffers and dropout rates shrink together."""
        index = torch.tensor(list(keep), dtype=torch.long, device=self.blocks[0].device)
        self.buffers = {n: b.index_select(0, index) for n, b in self.buffers.items()}
        self.rates = {n: [r[i] for i in keep] for n, r in self.rates.items()}
        for name in getattr(self, "_per_member", ()):  # a subclass that sets its own keeps them itself
            setattr(self, name, [getattr(self, name)[i] for i in keep])
        if getattr(self, "_masks", None):
            self._masks = {k: mask.index_select(0, index) for k, mask in self._masks.items()}
        self.bind([b.detach().index_select(0, index) for b in self.blocks])

    def fits(self, net: nn.Module) -> bool:
        """Whether ``net`` can join: one of the architectures the population was built for (the twin's
        padded sizes and the probe's verdict are theirs; the caller checks the bucket key)."""
        return tuple(tuple(p.shape) for p in net.parameters()) in self._archs

    @torch.no_grad()
    def add(self, nets: Sequence[nn.Module]) -> None:
        """Members join after the others (the inverse of :meth:`select`): parameters, buffers and
        dropout rates grow together; each net must :meth:`fits`."""
        if not all(self.fits(net) for net in nets):
            raise ConfigError("A member joins a running population only at an architecture it was built for; "
                              "train it in a population of its own.")
        start = self.size
        values = [[p.detach() for p in net.parameters()] for net in nets]
        shapes = [[tuple(p.shape) for p in ps] for ps in values]
        full = [tuple(b.shape[1:]) for b in self.blocks]
        placement = layout(nets[0], [full, *shapes])[1][1:]  # where each sits in the blocks as they are
        blocks = [torch.cat([b.detach(), b.new_zeros((len(nets), *b.shape[1:]))]) for b in self.blocks]
        for i, (ps, own) in enumerate(zip(values, placement)):
            for (k, where), v in zip(own, ps):
                blocks[k][start + i][where] = v
        self.buffers = {n: torch.cat([b, torch.stack([dict(net.named_buffers())[n] for net in nets])])
                        for n, b in self.buffers.items()}
        self.rates = {n: r + [dropout_rate(net, n) for net in nets] for n, r in self.rates.items()}
        self.member_shapes += shapes
        self.placement += placement
        self.architecture += [self._archs[tuple(own)] for own in shapes]
        self.bind(blocks)
        self._masks = masks(self.blocks, self.placement)

    def member(self, m: int, blocks: Sequence[torch.Tensor] | None = None) -> list[torch.Tensor]:
        """Member m's parameters at its own shapes (copies), from the live blocks or from ``blocks``
        (e.g. the best epoch's)."""
        source = blocks if blocks is not None else self.blocks
        return [source[k][m][where].detach().clone() for k, where in self.placement[m]]

    @torch.no_grad()
    def set_member(self, m: int, values: Sequence[torch.Tensor]) -> None:
        for (k, where), v in zip(self.placement[m], values):
            self.blocks[k][m][where] = v

    def state_dict(self, values: Sequence[torch.Tensor], net: nn.Module) -> dict[str, torch.Tensor]:
        """``net.state_dict()`` with one member's parameter ``values`` (its own shapes and names)."""
        state = {k: v.clone() for k, v in net.state_dict().items()}
        for (name, _), value in zip(net.named_parameters(), values):
            state[name] = value.clone().to(state[name].dtype)
        return state


@contextlib.contextmanager
def _full_precision(device: torch.device) -> Iterator[None]:
    """TF32 off while probing on CUDA (cuDNN convolutions use it by default): a kernel-3 convolution
    and the same centred in a kernel-7 one must agree to float32's 1e-5, not TF32's 1e-3."""
    if device.type != "cuda":
        yield
        return
    try:
        saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    except (RuntimeError, AttributeError):  # TF32 set through torch's newer precision API: left as it is
        yield
        return
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def _corner(shape: Sequence[int]) -> tuple[slice, ...]:
    return tuple(slice(0, d) for d in shape)


def _close(out: Any, ref: Any) -> bool:
    """Equal shapes and values to a relative 1e-5 (float32; 1e-9 float64, 1e-2 below) of the largest."""
    if not (isinstance(out, torch.Tensor) and isinstance(ref, torch.Tensor)) or out.shape != ref.shape:
        return False
    if ref.numel() == 0:
        return True
    rtol = {torch.float64: 1e-9, torch.float32: 1e-5}.get(ref.dtype, 1e-2)
    scale = float(ref.detach().abs().max())
    return bool(torch.allclose(out.detach(), ref.detach(), rtol=rtol, atol=rtol * scale))
