"""The fast path for plain MLPs (``nn.Sequential`` of Linear, activations and Dropout): batched
matrix products and a hand-written backward, members of different hidden widths and depths
padded into one population where that is exact."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import nn

from tuneloop.errors import ConfigError
from tuneloop.torch._stacked import StackedModel, drawn_masks

_ACTIVATIONS = (nn.ReLU, nn.GELU, nn.Tanh, nn.SiLU, nn.Identity)

Placement = list[list[tuple[int, tuple[slice, ...]]]]
Rows = slice | torch.Tensor | None  # the members that run a segment: a range, an index, or none
ALL = slice(None)  # every member


def is_plain_mlp(net: nn.Module) -> bool:
    """An ``nn.Sequential`` (exactly) of Linear, ReLU/GELU/Tanh/SiLU/Identity and Dropout layers,
    each Linear used once (a shared Linear shares weights: vmap's path handles that)."""
    if not (isinstance(net, nn.Sequential) and type(net).forward is nn.Sequential.forward):
        return False
    layers = _layers(net)
    linears = [id(m) for m in layers if type(m) is nn.Linear]
    return (bool(linears) and len(set(linears)) == len(linears)
            and all(type(m) in (nn.Linear, nn.Dropout, *_ACTIVATIONS) for m in layers))


@dataclass
class _Parsed:
    """A plain MLP cut at its Linears: what runs before the first, then one segment per Linear
    (the Linear and what follows it up to the next); the last segment is the head."""

    prefix: list[tuple[str, nn.Module]]
    hidden: list[list[tuple[str, nn.Module]]]
    head: list[tuple[str, nn.Module]]


def _parse(net: nn.Module) -> _Parsed:
    prefix: list[tuple[str, nn.Module]] = []
    segments: list[list[tuple[str, nn.Module]]] = []
    for name, module in _named_layers(net):
        if type(module) is nn.Linear:
            segments.append([(name, module)])
        elif segments:
            segments[-1].append((name, module))
        else:
            prefix.append((name, module))
    return _Parsed(prefix, segments[:-1], segments[-1])


def _kind(module: nn.Module) -> tuple[Any, ...]:
    """What must be equal for two layers at one position (a Linear's sizes are the widths)."""
    if type(module) is nn.Linear:
        return ("linear", module.bias is not None, str(module.weight.dtype),
                module.weight.device.type)
    if type(module) is nn.GELU:
        return ("gelu", module.approximate)
    return (type(module).__name__,)


def _kinds(layers: Sequence[tuple[str, nn.Module]]) -> tuple[Any, ...]:
    return tuple(_kind(m) for _, m in layers)


def _linear(segment: Sequence[tuple[str, nn.Module]]) -> nn.Linear:
    return cast(nn.Linear, segment[0][1])


class StackedMLP(StackedModel):
    """The fast path for plain MLPs: batched matmuls forward and a hand-written backward that
    writes gradients into preallocated blocks (no autograd graph, activations in place).

    Members may differ in their hidden widths: each block is as wide as its widest member and a
    narrower member's weights sit in its leading corner, the rest zero. That is exact: a padded
    unit's input weights and bias are zero, so it outputs activation(0) = 0 (ReLU, GELU, tanh,
    SiLU); its output weights meet only that zero, so every padded gradient is zero and every
    optimizer leaves a zero with a zero gradient where it is.

    Members may differ in depth where their hidden layers repeat one unit (Linear, then the same
    activations and dropout): the population has the deepest member's D hidden layers, every
    hidden block W wide (the widest hidden width of any member), and a member of depth d uses
    layers 1..d, then the head. Layers d+1..D are skipped for it: only the members that have a
    layer run it (a slice of the blocks where they are consecutive, else their rows gathered), the
    others' h passes through unchanged (its padded units are zero, so W wide is exact) and so does
    their gradient; their gradient rows there are zero (those weights are padding that no optimizer
    moves) and their dropout there draws nothing. No arithmetic touches a skipping member's h.

    ``placement[m][j] = (k, where)``: member m's j-th own parameter (``net.parameters()`` order)
    is ``blocks[k][m][where]``."""

    def __init__(self, nets: Sequence[nn.Module]) -> None:
        # no twin (StackedModel's is for functional_call): the forward pass is written out
        parsed = [_parse(net) for net in nets]
        self.depths = [len(p.hidden) for p in parsed]
        top = parsed[max(range(len(nets)), key=lambda m: self.depths[m])]  # the deepest member: the template
        depth = len(top.hidden)
        if not all(_alike(p, top) for p in parsed):
            raise ConfigError("These MLPs cannot share a population: their layers differ in more than width "
                              "and the number of repeated hidden layers; train them in separate populations.")
        widths = [max(_linear(p.hidden[t]).out_features for p in parsed if t < len(p.hidden)) for t in range(depth)]
        if len(set(self.depths)) > 1:  # a skipped layer passes h through: one width for all hidden layers
            widths = [max(widths)] * depth
        in_features = _linear((top.hidden or [top.head])[0]).in_features
        template = [*top.hidden, top.head]
        dims = [(w, in_features if t == 0 else widths[t - 1]) for t, w in enumerate(widths)]
        dims.append((_linear(top.head).out_features, widths[-1] if depth else in_features))

        # blocks: the template's parameters in its order (weight, bias per Linear)
        full: list[tuple[int, ...]] = []
        where: list[tuple[int, int | None]] = []  # block index of each template Linear's weight and bias
        for segment, (n_out, n_in) in zip(template, dims):
            full.append((n_out, n_in))
            bias = None
            if _linear(segment).bias is not None:
                full.append((n_out,))
                bias = len(full) - 1
            where.append((len(full) - (2 if bias is not None else 1), bias))
        self.names = [f"{segment[0][0]}.{part}" for segment in template
                      for part in ("weight", "bias")[:1 + (_linear(segment).bias is not None)]]
        self._top, self._depth, self._where = top, depth, where  # what a member joining later must fit
        self.placement: Placement = [self._own(p, net) for p, net in zip(parsed, nets)]
        first = next(nets[0].parameters())
        blocks = [first.new_zeros((len(nets), *shape)) for shape in full]
        with torch.no_grad():
            for m, net in enumerate(nets):
                for (k, at), value in zip(self.placement[m], net.parameters()):
                    blocks[k][m][at] = value.detach()

        # the layers in forward order; segments some members skip are bracketed by begin/end
        self.buffers: dict[str, torch.Tensor] = {}
        self.layers: list[tuple[str, Any]] = []
        self.dropouts: list[str] = []
        self.rates: dict[str, list[float]] = {}
        self.widths: dict[str, list[int]] = {}  # each member's own width at each dropout (0: skipped)
        self.features: dict[str, int] = {}  # the block's width there
        skipped = range(min(self.depths), depth)
        self._skippable = set(skipped)
        self._dropout_at: dict[str, tuple[int, int]] = {}  # each dropout's segment and place in it
        for t, segment in [(-1, top.prefix), *enumerate(template)]:
            if t in skipped:
                self.layers.append(("begin", t))
            for i, (name, module) in enumerate(segment):
                if isinstance(module, nn.Linear):
                    self.layers.append(("linear", where[t]))
                elif isinstance(module, nn.Dropout):
                    self.layers.append(("dropout", name))
                    self.dropouts.append(name)
                    self._dropout_at[name] = (t, i)
                    self.features[name] = in_features if t < 0 else dims[t][0]
                    own_layers = [_own_segment(p, t, depth) for p in parsed]
                    self.rates[name] = [float(cast(nn.Dropout, s[i][1]).p) if s else 0.0 for s in own_layers]
                    self.widths[name] = [(in_features if t < 0 else _linear(s).out_features) if s else 0
                                         for s in own_layers]
                elif isinstance(module, nn.GELU):
                    self.layers.append(("gelu", module.approximate))
                elif not isinstance(module, nn.Identity):
                    self.layers.append((type(module).__name__.lower(), None))
            if t in skipped:
                self.layers.append(("end", t))
        self.bind(blocks)
        self._segment_rows()

    def _own(self, p: _Parsed, net: nn.Module) -> list[tuple[int, tuple[slice, ...]]]:
        """Member ``net``'s placement: each Linear's weight and bias in the leading corner of its block."""
        own: list[tuple[int, tuple[slice, ...]]] = []
        for t, segment in enumerate([*p.hidden, p.head]):
            lin = _linear(segment)
            k_w, k_b = self._where[t if t < len(p.hidden) else self._depth]
            own.append((k_w, region(lin.weight.shape)))
            if lin.bias is not None and k_b is not None:
                own.append((k_b, region(lin.bias.shape)))
        if len(own) != len(list(net.parameters())):
            raise ConfigError("A plain MLP holds parameters outside its Linear layers; the population cannot "
                              "stack it.")
        return own

    def fits(self, net: nn.Module) -> bool:
        """Whether ``net`` can join: layers alike the deepest member's, no deeper, skipping only layers
        the population can skip, and every Linear within its block (the blocks do not grow)."""
        if not is_plain_mlp(net):
            return False
        p = _parse(net)
        d = len(p.hidden)
        if not _alike(p, self._top) or d > self._depth or any(t not in self._skippable for t in range(d, self._depth)):
            return False
        try:
            own = self._own(p, net)
        except ConfigError:
            return False
        return all(all(s.stop <= n for s, n in zip(at, self.blocks[k].shape[1:])) for k, at in own)

    @torch.no_grad()
    def add(self, nets: Sequence[nn.Module]) -> None:
        """Members join after the others (the inverse of :meth:`select`); each net must :meth:`fits`."""
        if not all(self.fits(net) for net in nets):
            raise ConfigError("A member joins a running MLP population only within its blocks' widths and depths; "
                              "train it in a population of its own.")
        start = self.size
        parsed = [_parse(net) for net in nets]
        placement = [self._own(p, net) for p, net in zip(parsed, nets)]
        blocks = [torch.cat([b, b.new_zeros((len(nets), *b.shape[1:]))]) for b in self.blocks]
        for i, (own, net) in enumerate(zip(placement, nets)):
            for (k, at), value in zip(own, net.parameters()):
                blocks[k][start + i][at] = value.detach()
        for name, (t, i) in self._dropout_at.items():
            segments = [_own_segment(p, t, self._depth) for p in parsed]
            self.rates[name] += [float(cast(nn.Dropout, s[i][1]).p) if s else 0.0 for s in segments]
            self.widths[name] += [(_linear((p.hidden or [p.head])[0]).in_features if t < 0 else _linear(s).out_features)
                                  if s else 0 for p, s in zip(parsed, segments)]
        self.placement += placement
        self.depths += [len(p.hidden) for p in parsed]
        self.bind(blocks)
        self._segment_rows()

    def _segment_rows(self) -> None:
        """The members that run each skippable segment: a slice where they are consecutive (members
        sorted by depth), else an index; None where none does."""
        self._rows: dict[int, Rows] = {}
        for t in {arg for kind, arg in self.layers if kind == "begin"}:
            active = [m for m, d in enumerate(self.depths) if t < d]
            if not active:
                self._rows[t] = None
            elif active == list(range(active[0], active[-1] + 1)):
                self._rows[t] = slice(active[0], active[-1] + 1)
            else:
                self._rows[t] = torch.tensor(active, dtype=torch.long, device=self.blocks[0].device)

    def bind(self, blocks: Sequence[torch.Tensor]) -> None:
        self.blocks = [b.detach() for b in blocks]
        self.params = dict(zip(self.names, self.blocks))
        self._grads = [torch.empty_like(b) for b in self.blocks]

    def noise(self, x: torch.Tensor, generators: Sequence[torch.Generator], exact: bool = False
              ) -> dict[str, torch.Tensor]:
        """Each member's dropout masks, drawn at its own width from its own stream (padding and
        layers it skips: ones, nothing drawn); ``exact``: as ``nn.Dropout`` draws them, else
        :func:`drawn_masks`."""
        if not exact:
            shapes: dict[str, list[tuple[int, ...]]] = {n: [(x.shape[1], w) for w in self.widths[n]]
                                                        for n in self.dropouts}
            masks = drawn_masks(self.dropouts, self.rates, shapes, generators, x.dtype, x.device)
            for name, mask in masks.items():  # no member as wide as the block here: pad with ones
                if mask.shape[-1] < self.features[name]:
                    masks[name] = nn.functional.pad(mask, (0, self.features[name] - mask.shape[-1]), value=1.0)
            return masks
        out = {}
        for name in self.dropouts:
            widths = self.widths[name]
            mask = torch.ones((self.size, x.shape[1], self.features[name]), dtype=x.dtype, device=x.device)
            for m, gen in enumerate(generators):
                p, part = self.rates[name][m], mask[m, :, :widths[m]]
                if widths[m] == 0:
                    continue
                if p == 1:
                    part.zero_()
                elif p > 0:
                    part.bernoulli_(1 - p, generator=gen).div_(1 - p)
            out[name] = mask
        return out

    def select(self, keep: Sequence[int]) -> None:
        super().select(keep)
        self.placement = [self.placement[i] for i in keep]
        self.depths = [self.depths[i] for i in keep]
        self.widths = {n: [w[i] for i in keep] for n, w in self.widths.items()}
        self._segment_rows()

    @torch.no_grad()
    def forward(self, x: torch.Tensor, noise: dict[str, torch.Tensor] | None = None, *,
                shared_input: bool = False, train: bool = True) -> torch.Tensor:
        h = x.expand(self.size, *x.shape) if shared_input else x
        fresh = False  # h is our own buffer (not the caller's input): activations may work in place
        entering, skip = h, False
        rows: Rows = ALL
        for kind, arg in self.layers:
            if kind == "begin":  # only the members that have this layer run it
                entering, rows = h, self._rows[arg]
                skip = rows is None
                h = h if skip else _take(h, rows)
                continue
            if kind == "end":  # ... the others keep what entered it
                h = entering if skip else _put(entering, rows, h)
                rows, skip = ALL, False
                continue
            if skip:
                continue
            if kind == "linear":
                w, b = _take(self.blocks[arg[0]], rows), (_take(self.blocks[arg[1]], rows) if arg[1] is not None else None)
                h = torch.baddbmm(b.unsqueeze(1), h, w.transpose(1, 2)) if b is not None else torch.bmm(h, w.transpose(1, 2))
                fresh = True
                continue
            if kind == "dropout":
                if not (train and noise):
                    continue
                h = h * _take(noise[arg], rows)
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
        weights: dict[int, torch.Tensor] = {}
        h = entering = x
        rows: Rows = ALL
        skip = False
        for kind, arg in self.layers:
            if kind == "begin":
                entering, rows = h, self._rows[arg]
                skip = rows is None
                h = h if skip else _take(h, rows)
                saved.append(None)
            elif kind == "end":
                h = entering if skip else _put(entering, rows, h)
                rows, skip = ALL, False
                saved.append(None)
            elif skip:
                saved.append(None)
            elif kind == "linear":
                w, b = _take(self.blocks[arg[0]], rows), (_take(self.blocks[arg[1]], rows) if arg[1] is not None else None)
                weights[len(saved)] = w  # the block, or the rows that run it (gathered once)
                saved.append(h)
                h = torch.baddbmm(b.unsqueeze(1), h, w.transpose(1, 2)) if b is not None else torch.bmm(h, w.transpose(1, 2))
            elif kind == "dropout":
                mask = _take(noise[arg], rows)
                saved.append(mask)
                h = h * mask
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
        leaving = d
        for i in range(len(self.layers) - 1, first_linear - 1, -1):
            kind, arg = self.layers[i]
            keep = saved[i]
            if kind == "end":  # only the members that ran the segment backpropagate through it
                leaving, rows = d, self._rows[arg]
                skip = rows is None
                d = d if skip else _take(d, rows)
            elif kind == "begin":  # the others' gradient passes it unchanged
                d = leaving if skip else _put(leaving, rows, d)
                rows, skip = ALL, False
            elif kind == "linear":
                if rows is ALL:
                    torch.bmm(d.transpose(1, 2), keep, out=self._grads[arg[0]])
                    if arg[1] is not None:
                        torch.sum(d, 1, out=self._grads[arg[1]])
                else:  # the members that skip the layer get zero rows (it is padding to them)
                    _scatter(self._grads[arg[0]], rows, None if skip else torch.bmm(d.transpose(1, 2), keep))
                    if arg[1] is not None:
                        _scatter(self._grads[arg[1]], rows, None if skip else torch.sum(d, 1))
                if i > first_linear and not skip:
                    d = torch.bmm(d, weights[i])
            elif skip:
                continue
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


def _take(t: torch.Tensor, rows: Rows) -> torch.Tensor:
    """The rows of ``t`` (members first) that run a segment: a view of a range, else a gathered copy."""
    if rows is ALL:
        return t
    return t[rows] if isinstance(rows, slice) else t.index_select(0, cast(torch.Tensor, rows))


def _put(base: torch.Tensor, rows: Rows, part: torch.Tensor) -> torch.Tensor:
    """``base`` (what entered a segment) with the rows that ran it replaced by ``part``, as a new tensor."""
    if isinstance(rows, slice):
        return torch.cat([base[:rows.start], part, base[rows.stop:]])
    return base.index_copy(0, cast(torch.Tensor, rows), part)


def _scatter(target: torch.Tensor, rows: Rows, value: torch.Tensor | None) -> None:
    """A gradient block: ``value`` at the rows that ran the layer, zero at the others."""
    if value is None:
        target.zero_()
    elif isinstance(rows, slice):
        target[:rows.start].zero_()
        target[rows.stop:].zero_()
        target[rows].copy_(value)
    else:
        target.zero_()
        target.index_copy_(0, cast(torch.Tensor, rows), value)


def _alike(p: _Parsed, top: _Parsed) -> bool:
    """``p`` runs as the first layers of ``top`` (the deepest member), then its head."""
    def size(q: _Parsed) -> tuple[int, int]:
        return _linear((q.hidden or [q.head])[0]).in_features, _linear(q.head).out_features

    return (_kinds(p.prefix) == _kinds(top.prefix) and _kinds(p.head) == _kinds(top.head) and size(p) == size(top)
            and all(_kinds(s) == _kinds(t) for s, t in zip(p.hidden, top.hidden)) and bool(p.hidden) == bool(top.hidden))


def _own_segment(p: _Parsed, t: int, depth: int) -> list[tuple[str, nn.Module]] | None:
    """Member ``p``'s layers at the template's segment t (-1: prefix, depth: head); None where it skips."""
    if t < 0:
        return p.prefix
    if t == depth:
        return p.head
    return p.hidden[t] if t < len(p.hidden) else None


def region(shape: Sequence[int]) -> tuple[slice, ...]:
    """The leading corner of a padded block where a member of this shape lives."""
    return tuple(slice(0, d) for d in shape)


def _named_layers(net: nn.Module) -> list[tuple[str, nn.Module]]:
    """A plain MLP's layers in order with their names, repeats included (``named_children`` drops a
    module used twice; :func:`is_plain_mlp` made sure it is an nn.Sequential)."""
    return list(cast(nn.Sequential, net)._modules.items())


def _layers(net: nn.Module) -> list[nn.Module]:
    """A plain MLP's layers in order, repeats included."""
    return list(cast(nn.Sequential, net))


def _pow2(n: int) -> int:
    return 1 << (n - 1).bit_length()


def padded_signature(net: nn.Module) -> tuple[Any, ...]:
    """A plain MLP's bucket key where hidden widths and depth may differ.

    When every hidden layer repeats one unit (a Linear with or without bias, then the same
    activations and dropout), the key holds that unit, the input and output sizes and one hidden
    width W (the widest hidden layer, rounded up to a power of two: members within 2x share a
    population), but not the depth: a shallower member skips the deepest's extra layers, which
    pass its h through unchanged, so every hidden layer must be W wide and the widths round
    together. Otherwise (hidden layers that differ) the key holds each layer, widths rounded
    one by one, and the depth. A single Linear (no hidden layer) shares with no hidden MLP."""
    parsed = _parse(net)
    head = ("head", _linear(parsed.head).out_features, _kinds(parsed.head))
    first = _linear((parsed.hidden or [parsed.head])[0])
    start = ("padded-mlp", _kinds(parsed.prefix), first.in_features)
    if not parsed.hidden:
        return (*start, "no-hidden", head)
    units = {_kinds(segment) for segment in parsed.hidden}
    if len(units) == 1:
        width = max(_linear(segment).out_features for segment in parsed.hidden)
        return (*start, "repeated", units.pop(), _pow2(width), head)
    layers = tuple((_kinds(segment), _pow2(_linear(segment).out_features)) for segment in parsed.hidden)
    return (*start, "layers", layers, head)


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
