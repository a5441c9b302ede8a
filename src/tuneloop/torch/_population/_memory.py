"""How many members fit in memory at once, and how much memory a population took."""

from __future__ import annotations

import resource
import sys
from typing import Any

import torch

from tuneloop.torch._population._jobs import Member


def fitting_members(members: list[Member]) -> int:
    """How many members fit in memory at once: parameters with optimizer state and copies
    (about 8 per parameter) plus activations, against 70% of free accelerator memory or 50% of
    available RAM."""
    first = max(members, key=lambda m: sum(p.numel() for p in m.net.parameters()))  # the widest, if padded
    net = first.net
    elt = next(net.parameters()).element_size()
    params = sum(p.numel() for p in net.parameters())
    acts = 0

    def count(_: Any, __: Any, out: Any) -> None:
        nonlocal acts
        acts += sum(t.numel() for t in (out if isinstance(out, (tuple, list)) else (out,)) if isinstance(t, torch.Tensor))

    hooks = [m.register_forward_hook(count) for m in net.modules() if not list(m.children())]
    try:
        with torch.no_grad():
            x = first.train.x[: first.args["batch_size"]]
            net(x)
    finally:
        for h in hooks:
            h.remove()
    per_member = elt * (8 * params + 3 * acts) + 1
    dev = first.train.x.device
    if dev.type == "cuda":
        free, _ = torch.cuda.mem_get_info(dev)
        budget = 0.7 * free
    else:
        budget = 0.5 * available_ram()
    return max(1, int(budget // per_member))

def available_ram() -> float:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    return 8 * 2**30

def peak_memory_mb(device: torch.device) -> float:
    """Peak memory so far: allocated on the accelerator, else the process's peak resident size."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10
