"""Members of different sizes in one vmapped population: which sizes may differ, where each
member lives in the padded blocks, and the padded twin that runs them.

Linear in/out features and Conv1d/2d/3d channels pad exactly with zeros in the leading corner
of each block: a zero output channel gives activation(0) = 0 (ReLU, GELU, tanh, SiLU) and its
outgoing weights meet only that zero; a Linear after a channel-major flatten of (C, ...) then holds
the member's c * ... columns in its leading corner too. Odd kernels padded ``k // 2`` (``groups``
1, dilation 1, zero padding) sit centred in the largest kernel: every odd kernel gives the same
output length, and the zero taps around a member's kernel add nothing. The padded taps do get
gradients, so :class:`tuneloop.torch._stacked.StackedModel` masks them. None of this is trusted
alone: a model may normalize over channels or read them in forward, so a padded population is
probed first (:meth:`StackedModel.exact_members`) and members it does not reproduce train apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import torch
from torch import nn

_PRIMITIVE = (int, float, bool, str, tuple, type(None))
_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)

Placement = list[list[tuple[int, tuple[slice, ...]]]]


def config(sub: nn.Module) -> tuple[Any, ...]:
    """A module's simple attributes (its configuration), sorted; a dropout rate is per member, not config."""
    return tuple(sorted((k, v) for k, v in vars(sub).items()
                        if not k.startswith("_") and k != "training" and isinstance(v, _PRIMITIVE)
                        and not (isinstance(sub, nn.Dropout) and k == "p")))


def centred(module: nn.Module) -> bool:
    """A convolution whose kernel can sit centred in a larger one with the same output: odd in every
    dimension, padded ``k // 2`` (or ``"same"``), dilation 1, one group, zero padding."""
    if type(module) not in _CONVS:
        return False
    conv = cast(nn.modules.conv._ConvNd, module)
    kernel, padding = tuple(conv.kernel_size), conv.padding
    return (conv.padding_mode == "zeros" and conv.groups == 1 and all(d == 1 for d in conv.dilation)
            and all(k % 2 == 1 for k in kernel)
            and (padding == "same" or tuple(padding) == tuple(k // 2 for k in kernel)))


def _paddable(sub: nn.Module) -> bool:
    return type(sub) is nn.Linear or (type(sub) in _CONVS and cast(nn.modules.conv._ConvNd, sub).groups == 1)


def _round(n: int) -> int:
    return 1 << (n - 1).bit_length() if n > 0 else n


def padded_key(net: nn.Module) -> tuple[Any, ...] | None:
    """The bucket key of a model the vmap path may pad: ``signature``'s, with Linear out features
    and Conv out channels rounded up to a power of two (members within 2x share a population, as
    MLP widths do), in features and in channels left out (the layer before sizes them: a head after
    a flatten of c x L takes c * L, within 2x when c is) and centred kernel sizes left out; every
    other configuration and shape exact. None for models with recurrent layers (they train
    unpadded, by their exact signature). The probe, not this key, decides what is exact."""
    if any(isinstance(m, nn.RNNBase) for m in net.modules()):
        return None
    parts: list[Any] = []
    sized: set[int] = set()  # parameters whose shapes the rounded sizes stand for
    for name, sub in net.named_modules():
        attrs = dict(config(sub))
        if _paddable(sub):
            sized.update(id(p) for p in sub.parameters(recurse=False))
            for size in ("out_features", "out_channels"):
                if size in attrs:
                    attrs[size] = _round(attrs[size])
            for size in ("in_features", "in_channels"):  # what comes in: sized by the layer before it
                if size in attrs:
                    attrs[size] = "padded"
            if centred(sub):
                attrs["kernel_size"] = "odd, centred"
                attrs["padding"] = "same" if sub.padding == "same" else "kernel // 2"
        parts.append((name, type(sub).__module__, type(sub).__qualname__, tuple(sorted(attrs.items()))))
    parts += [(n, None if id(p) in sized else tuple(p.shape), str(p.dtype), p.device.type)
              for n, p in net.named_parameters()]
    parts += [(n, tuple(b.shape), str(b.dtype)) for n, b in net.named_buffers()]
    return ("padded-vmap", *parts)


def layout(net: nn.Module, member_shapes: Sequence[Sequence[tuple[int, ...]]]
           ) -> tuple[list[tuple[int, ...]], Placement]:
    """Each block's padded shape (the largest member's, per dimension) and every member's place
    in it: the leading corner, except a centred kernel's spatial dimensions (offset to the centre)."""
    names = [n for n, _ in net.named_parameters()]
    kernels = {f"{name}.weight" if name else "weight" for name, sub in net.named_modules() if centred(sub)}
    full = [tuple(max(dims) for dims in zip(*(shapes[k] for shapes in member_shapes))) for k in range(len(names))]
    placement: Placement = []
    for shapes in member_shapes:
        own = []
        for k, (name, shape) in enumerate(zip(names, shapes)):
            where = [slice(0, d) for d in shape]
            if name in kernels:
                for dim in range(2, len(shape)):
                    start = (full[k][dim] - shape[dim]) // 2
                    where[dim] = slice(start, start + shape[dim])
            own.append((k, tuple(where)))
        placement.append(own)
    return full, placement


def resize(twin: nn.Module, nets: Sequence[nn.Module], full: Sequence[tuple[int, ...]]) -> None:
    """Make the (meta-device) twin the padded architecture: sizes of every Linear and Conv the
    largest member's, a centred kernel's padding its kernel's, parameters of the padded shapes."""
    for name, sub in twin.named_modules():
        if not _paddable(sub):
            continue
        own = [net.get_submodule(name) for net in nets]
        for size in ("in_features", "out_features", "in_channels", "out_channels"):
            if hasattr(sub, size):
                setattr(sub, size, max(getattr(o, size) for o in own))
        if centred(sub):
            kernel = tuple(max(dims) for dims in zip(*(o.kernel_size for o in own)))
            sub.kernel_size = kernel
            if sub.padding != "same":
                sub.padding = tuple(k // 2 for k in kernel)
                sub._reversed_padding_repeated_twice = [p for k in reversed(kernel) for p in (k // 2, k // 2)]
    index = {n: k for k, (n, _) in enumerate(twin.named_parameters())}
    for name, k in index.items():
        parent, _, leaf = name.rpartition(".")
        module = twin.get_submodule(parent) if parent else twin
        setattr(module, leaf, nn.Parameter(torch.empty(full[k], device="meta", dtype=getattr(module, leaf).dtype)))


def masks(blocks: Sequence[torch.Tensor], placement: Placement) -> dict[int, torch.Tensor]:
    """For each block some member does not fill: 1 where a member's parameter lives, 0 in its padding."""
    out: dict[int, torch.Tensor] = {}
    for k, block in enumerate(blocks):
        full = tuple(block.shape[1:])
        wheres = [where for own in placement for kk, where in own if kk == k]
        if all(tuple(s.stop - s.start for s in where) == full for where in wheres):
            continue
        mask = torch.zeros_like(block, requires_grad=False)
        for m, own in enumerate(placement):
            for kk, where in own:
                if kk == k:
                    mask[m][where] = 1
        out[k] = mask
    return out
