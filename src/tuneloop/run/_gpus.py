"""GPUs on one machine: which ones this process may use, pinning worker processes to them, and the
device a trial ran on.

GPUs are numbered as torch numbers them in the driver: ``gpus=[0, 1]`` (``--gpus 0,1``) are the
first two *visible* devices, ``cuda:0`` and ``cuda:1``. When the driver itself runs under
``CUDA_VISIBLE_DEVICES="2,3,5"`` those are physical GPUs 2 and 3, and the workers pinned to them
start with ``CUDA_VISIBLE_DEVICES="2"`` and ``"3"`` (entries may also be ``GPU-<uuid>`` or
``MIG-<uuid>``, passed on as they are). A pinned worker sees one GPU, its ``cuda:0``.

    >>> plan = pin_slots(["2", "3", "5"], gpus=[0, 1], trials_per_gpu=2)
    >>> plan
    ['2', '2', '3', '3']
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

from tuneloop._validation import check_positive_int, fail
from tuneloop.errors import ConfigError

ENV = "CUDA_VISIBLE_DEVICES"
# what CUDA accepts in the variable: an ordinal, a GPU's UUID (or a unique prefix of it), a MIG instance
_ENTRY = re.compile(r"\d+|GPU-[0-9A-Za-z-]+|MIG-[0-9A-Za-z/-]+")
_ENV_LOCK = threading.Lock()  # os.environ is process-wide: one worker is started at a time under its own pin


# -- what this process may use ---------------------------------------------------------------------
def parse_visible(raw: str) -> list[str]:
    """The entries of a ``CUDA_VISIBLE_DEVICES`` value, in order. As CUDA reads it, the list ends at the
    first entry it cannot use (``"0,-1,2"`` is GPU 0 alone; ``""`` is none); a repeated entry ends it too."""
    entries: list[str] = []
    for token in raw.split(","):
        token = token.strip()
        if not _ENTRY.fullmatch(token) or token in entries:
            break
        entries.append(token)
    return entries


def visible_gpus() -> list[str]:
    """The GPUs this process may use, as ``CUDA_VISIBLE_DEVICES`` entries in torch's order (``cuda:0``
    first): the parsed variable when it is set (passed on as given: an id that names no GPU leaves the
    worker pinned to it without one), else ``0 .. torch.cuda.device_count() - 1``."""
    raw = os.environ.get(ENV)
    if raw is not None:
        return parse_visible(raw)
    return [str(i) for i in range(_cuda_count())]


def _cuda_count() -> int:
    """torch's count of visible CUDA devices (NVML-based: it does not initialise CUDA here); 0 when
    torch is built without CUDA or this machine has no GPU device file (then torch is not imported:
    that costs ~1.5 s)."""
    if "torch" not in sys.modules and not _may_have_gpu():
        return 0
    import torch

    return int(torch.cuda.device_count()) if torch.backends.cuda.is_built() else 0


def _may_have_gpu() -> bool:
    if sys.platform == "darwin":  # no CUDA on macOS
        return False
    if sys.platform.startswith("linux"):  # NVIDIA's device files, AMD's (ROCm), WSL's
        return any(os.path.exists(p) for p in ("/dev/nvidiactl", "/dev/nvidia0", "/dev/kfd", "/dev/dxg"))
    return True


def describe(entries: Sequence[str]) -> str:
    """What is visible, for an error message."""
    raw = os.environ.get(ENV)
    where = f"{ENV}={raw!r}" if raw is not None else f"{ENV} is unset"
    if not entries:
        return f"no GPU is visible ({where})"
    shown = ", ".join(f"cuda:{i} = {_physical(e)}" for i, e in enumerate(entries))
    return f"{len(entries)} GPU{'s are' if len(entries) > 1 else ' is'} visible ({shown}; {where})"


# -- which GPUs a run uses -------------------------------------------------------------------------
def parse_gpus(text: str) -> list[int]:
    """``--gpus``: indices separated by commas (``0,1,2,3``), or ``none`` for no pinning."""
    if text.strip().lower() == "none":
        return []
    try:
        gpus = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        gpus = []
    if not gpus or any(g < 0 for g in gpus):
        raise ConfigError(f"--gpus takes GPU indices separated by commas, e.g. --gpus 0,1 (numbered as torch "
                          f"numbers the visible GPUs), or --gpus none. Got {text!r:.60} instead.")
    return gpus


def check_gpus(gpus: Any, owner: str) -> list[int]:
    """``gpus`` as a list of distinct non-negative ints."""
    if isinstance(gpus, (str, bytes)) or not isinstance(gpus, Sequence) or any(
            isinstance(g, bool) or not isinstance(g, int) or g < 0 for g in gpus):
        raise fail("gpus", owner, "a list of GPU indices such as [0, 1] ([] turns pinning off)", gpus)
    if len(set(gpus)) != len(gpus):
        raise ConfigError(f"gpus={list(gpus)} names a GPU twice; list each once and pass trials_per_gpu "
                          f"(--trials-per-gpu N) to run several trials on each.")
    return list(gpus)


def resolve(gpus: Sequence[int], asked: str | None = None) -> list[str]:
    """The ``CUDA_VISIBLE_DEVICES`` entry of each index in ``gpus``; ConfigError naming what is visible
    when one is past them (``asked``: what the user passed, for the message)."""
    visible = visible_gpus()
    if not visible:
        asked = asked or f"gpus={list(gpus)} (--gpus {','.join(map(str, gpus))})"
        raise ConfigError(f"{asked} pins trials to GPUs, but {describe(visible)}; "
                          f"run without it, or on a machine whose GPUs torch sees.")
    past = [g for g in gpus if g >= len(visible)]
    if past:
        raise ConfigError(f"There is no GPU {past[0]} to pin to: {describe(visible)}; pass indices 0 to "
                          f"{len(visible) - 1} (cuda:0 is the first visible GPU).")
    return [visible[g] for g in gpus]


def check_packed(workers: int | None, n_gpus: int, trials_per_gpu: int | None) -> None:
    """``workers``, when given with ``trials_per_gpu``, must be their product."""
    if trials_per_gpu is not None and workers is not None and workers != n_gpus * trials_per_gpu:
        raise ConfigError(f"workers={workers} (--workers) conflicts with {n_gpus} GPU{'s' if n_gpus > 1 else ''} x "
                          f"trials_per_gpu={trials_per_gpu} = {n_gpus * trials_per_gpu} workers; drop --workers.")


def pin_slots(visible: Sequence[str], gpus: Sequence[int], trials_per_gpu: int | None = None,
              workers: int | None = None) -> list[str]:
    """The ``CUDA_VISIBLE_DEVICES`` of each worker slot: ``trials_per_gpu`` slots per GPU, packed (slot
    i on ``gpus[i // trials_per_gpu]``); or ``workers`` slots dealt round-robin over ``gpus``."""
    entries = [visible[g] for g in gpus]
    if trials_per_gpu is not None:
        return [e for e in entries for _ in range(trials_per_gpu)]
    return [entries[i % len(entries)] for i in range(workers or len(entries))]


def plan(executor: Any, workers: int | None, gpus: Any, trials_per_gpu: Any, owner: str = "Study.run", *,
         fn: Any = None) -> Any:
    """Where a run's trials go on this machine's GPUs: the executor spec to build, or None to choose as
    without GPUs (inline for one worker, processes for several).

    - ``gpus=[...]`` (``--gpus 0,1``): worker processes pinned to those GPUs, ``trials_per_gpu`` each
      (1 by default); ``workers`` given too spreads that many round-robin over them.
    - ``gpus=[]`` (``--gpus none``): no pinning, as without GPUs.
    - neither given, GPUs visible: one trial per GPU when ``workers`` and ``executor`` are not chosen
      (with two or more GPUs, and a trial function ``fn`` from an experiment file or a module: one
      in ``__main__``, a notebook's or a script's, runs inline as before); chosen ``workers`` of the
      processes executor spread round-robin over every visible GPU.
    - no GPU visible: nothing changes.
    """
    name = executor if isinstance(executor, str) else executor.get("name") if isinstance(executor, dict) else (
        None if executor is None else "an instance")
    if isinstance(executor, dict) and "workers" in executor:
        workers = executor["workers"]
    if trials_per_gpu is not None:
        check_positive_int(trials_per_gpu, "trials_per_gpu", owner)
    if gpus is not None:
        gpus = check_gpus(gpus, owner)
        if not gpus:
            if trials_per_gpu is not None:
                raise ConfigError("trials_per_gpu (--trials-per-gpu) packs trials on GPUs, but gpus=[] (--gpus none) "
                                  "turns pinning off; drop one of them.")
            return executor
    elif trials_per_gpu is None:  # nothing asked: the defaults with GPUs present
        if name not in (None, "processes") or (isinstance(executor, dict) and "gpus" in executor):
            return executor
        visible = visible_gpus()
        if not visible or (name is None and workers is None and (len(visible) == 1 or not _loads(fn))):
            return executor
        n = workers if workers is not None else len(visible)
        if name is None and n == 1:
            return executor  # one worker chosen: inline, as without GPUs
        return {**(executor if isinstance(executor, dict) else {}), "name": "processes", "workers": n,
                "gpus": list(range(len(visible))), "trials_per_gpu": None}
    explicit = (f"gpus={gpus} (--gpus {','.join(map(str, gpus))})" if gpus is not None
                else f"trials_per_gpu={trials_per_gpu} (--trials-per-gpu {trials_per_gpu})")
    if name == "inline":
        raise ConfigError(f"{explicit} pins worker processes, but executor='inline' runs trials in this process; "
                          f"use executor='processes' (--executor processes), or drop --gpus/--trials-per-gpu.")
    if name == "ray":
        raise ConfigError(f"The ray executor places trials on GPUs itself: pass gpus_per_trial (--gpus-per-trial 1 or "
                          f"0.5) instead of {explicit}.")
    if name not in (None, "processes", "population"):
        raise ConfigError(f"{explicit} configures an executor tuneloop builds; give it to the executor you built "
                          f"instead, e.g. ProcessesExecutor(gpus=[0, 1], trials_per_gpu=2).")
    if isinstance(executor, dict) and ("gpus" in executor or "trials_per_gpu" in executor):
        raise ConfigError("gpus and trials_per_gpu are given twice (in the executor's options and to the run); "
                          "give them once.")
    visible = visible_gpus()
    indices = gpus if gpus is not None else list(range(len(visible)))
    resolve(indices or [0], explicit)  # past the visible ones, or none visible: one line, before anything starts
    if name == "population":
        if trials_per_gpu is not None:
            raise ConfigError("trials_per_gpu (--trials-per-gpu) packs worker processes; the population executor "
                              "trains each bucket of members on one GPU of gpus (--gpus) instead.")
        return {**(executor if isinstance(executor, dict) else {"name": "population"}), "gpus": indices}
    check_packed(workers, len(indices), trials_per_gpu)
    n = len(indices) * (trials_per_gpu or 1) if trials_per_gpu is not None or workers is None else workers
    return {**(executor if isinstance(executor, dict) else {}), "name": "processes", "workers": n, "gpus": indices,
            "trials_per_gpu": trials_per_gpu}


def _loads(fn: Any) -> bool:
    from tuneloop.run._worker import loads_in_workers

    return fn is None or loads_in_workers(fn)


# -- pinning a child process -------------------------------------------------------------------------
@contextlib.contextmanager
def pinned_environment(entry: str | None) -> Iterator[None]:
    """``CUDA_VISIBLE_DEVICES=entry`` in this process's environment while a child process starts (it
    inherits the environment, so the pin holds before its torch ever initialises CUDA); None: unchanged."""
    if entry is None:
        yield
        return
    with _ENV_LOCK:
        before = os.environ.get(ENV)
        os.environ[ENV] = entry
        try:
            yield
        finally:
            if before is None:
                os.environ.pop(ENV, None)
            else:
                os.environ[ENV] = before


# -- where a trial ran -------------------------------------------------------------------------------
def device_label() -> str:
    """The devices this process's trial may use: ``cuda:0 = GPU 2 (NVIDIA H200)`` in a pinned worker,
    ``cuda:0-3 = GPU 0, 1, 2, 3 (NVIDIA H200)`` unpinned, ``cpu`` without a GPU."""
    entries = visible_gpus()
    if not entries:
        return "cpu"
    names = sorted({n for n in (gpu_name(e) for e in entries) if n})
    name = f" ({' / '.join(names)})" if names else ""
    if len(entries) == 1:
        return f"cuda:0 = {_physical(entries[0])}{name}"
    return f"cuda:0-{len(entries) - 1} = GPU {', '.join(entries)}{name}"


def gpu_label(index: int) -> str:
    """``cuda:1 = GPU 3 (NVIDIA H200)``: visible GPU ``index`` of this process (a population bucket's)."""
    entry = visible_gpus()[index]
    name = gpu_name(entry)
    return f"cuda:{index} = {_physical(entry)}" + (f" ({name})" if name else "")


def _physical(entry: str) -> str:
    return f"GPU {entry}" if entry.isdigit() else entry


def nvml() -> Any:
    """The NVML module (``pynvml``, from nvidia-ml-py), initialised once per process; None without it or
    without an NVIDIA driver."""
    global _NVML
    if _NVML is None:
        _NVML = False
        try:
            with warnings.catch_warnings():  # the old `pynvml` wrapper package warns that it is deprecated
                warnings.simplefilter("ignore")
                import pynvml
            pynvml.nvmlInit()
            _NVML = pynvml
        except Exception:  # noqa: BLE001 - not installed, no driver, no GPU: no names and no GPU metrics
            pass
    return _NVML or None


_NVML: Any = None


def nvml_handle(entry: str) -> Any:
    """NVML's handle of a ``CUDA_VISIBLE_DEVICES`` entry (NVML ignores the variable): by UUID, or by
    index, which matches CUDA's ordinal as torch assumes it does (set CUDA_DEVICE_ORDER=PCI_BUS_ID on
    machines with mixed GPUs so that both number them like nvidia-smi); None when it cannot."""
    lib = nvml()
    if lib is None:
        return None
    try:
        return lib.nvmlDeviceGetHandleByIndex(int(entry)) if entry.isdigit() else lib.nvmlDeviceGetHandleByUUID(entry)
    except Exception:  # noqa: BLE001 - a UUID prefix or an old-style MIG name: no handle, no name
        return None


def gpu_name(entry: str) -> str | None:
    handle = nvml_handle(entry)
    if handle is None:
        return None
    try:
        name = nvml().nvmlDeviceGetName(handle)
    except Exception:  # noqa: BLE001
        return None
    return name.decode() if isinstance(name, bytes) else str(name)
