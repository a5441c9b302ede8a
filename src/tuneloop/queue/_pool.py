"""How many jobs ``tuneloop queue run`` runs at once (``--workers``), and on which GPUs (``--gpus``):
each running job gets one GPU of the pool as its child's ``CUDA_VISIBLE_DEVICES``, never one another
running job has, so there are never more slots than GPUs.

GPUs are numbered as torch numbers them (as ``tuneloop run --gpus`` does, ``run/_gpus.py``): under
``CUDA_VISIBLE_DEVICES=2,3`` the runner's ``--gpus 0,1`` are GPUs 2 and 3. Only ``--gpus all`` asks
torch how many GPUs there are; indices are passed on unchecked when the variable is unset.
"""

from __future__ import annotations

import os

from tuneloop.errors import ConfigError


def gpu_pool(spec: str) -> list[str]:
    """``--gpus``: the ``CUDA_VISIBLE_DEVICES`` entry each job may be pinned to, from indices separated by
    commas (``0,1``: numbered as torch numbers the visible GPUs, so under ``CUDA_VISIBLE_DEVICES=2,3``
    they are GPUs 2 and 3) or ``all`` (every visible GPU; only this asks torch how many there are).
    With ``CUDA_VISIBLE_DEVICES`` unset, ``gpu_pool("1,0")`` is ``["1", "0"]``."""
    from tuneloop.run._gpus import ENV, describe, parse_visible, visible_gpus

    text = spec.strip()
    if text.lower() == "all":
        visible = visible_gpus()
        if not visible:
            raise ConfigError(f"--gpus all pins each job to a GPU, but {describe(visible)}; run without --gpus.")
        return visible
    tokens = [t.strip() for t in text.split(",")]
    if not all(t.isascii() and t.isdigit() and len(t) < 6 for t in tokens):
        raise ConfigError(f"--gpus takes GPU indices separated by commas (e.g. --gpus 0,1) or all. Got {spec!r:.60} "
                          f"instead.")
    indices = [int(t) for t in tokens]
    twice = next((i for n, i in enumerate(indices) if i in indices[:n]), None)
    if twice is not None:
        raise ConfigError(f"--gpus names GPU {twice} twice; a job never shares its GPU, so list each GPU once.")
    raw = os.environ.get(ENV)
    if raw is None:  # every GPU is visible: the indices are the GPUs' own (torch is not asked how many there are)
        return [str(i) for i in indices]
    visible = parse_visible(raw)
    past = [i for i in indices if i >= len(visible)]
    if past:
        fix = ("run without --gpus" if not visible else
               f"pass indices 0 to {len(visible) - 1} (0 is the first visible GPU)")
        raise ConfigError(f"There is no GPU {past[0]} to pin to: {describe(visible)}; {fix}.")
    return [visible[i] for i in indices]


def slots(workers: int | None, gpus: list[str] | None) -> int:
    """How many jobs run at once: ``workers`` (1 by default, or one per GPU of ``gpus``), never more than
    the GPUs, since a job never shares its GPU."""
    if gpus is not None and (not gpus or len(set(gpus)) != len(gpus)):
        raise ConfigError(f"gpus must name distinct GPUs, at least one; got {gpus!r:.80}.")
    workers = (len(gpus) if gpus else 1) if workers is None else workers
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"--workers takes a whole number of jobs at once, at least 1, not {workers!r:.40}.")
    if gpus is not None and workers > len(gpus):
        raise ConfigError(f"--workers {workers} runs {workers} jobs at once, but --gpus gives {len(gpus)} "
                          f"GPU{'s' if len(gpus) > 1 else ''} and a job never shares its GPU; pass --workers "
                          f"{len(gpus)} or fewer, or more GPUs.")
    return workers
