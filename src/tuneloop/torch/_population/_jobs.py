"""Jobs become members: what ``fit`` does before its first step, once per job, and the key that
says which members can share a population (a bucket)."""

from __future__ import annotations

import copy
import hashlib
import inspect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from tuneloop._validation import check_one_of, check_positive_int
from tuneloop.errors import ConfigError
from tuneloop.torch._data import Batches, batches
from tuneloop.torch._fit import (
    OPTIMIZERS,
    SCHEDULES,
    _final_phase,
    _horizon,
    _log_init_loss,
    _loss_fn,
    _resume,
    build_model,
    fit,
    lr_factor,
    make_optimizer,
    make_schedule,
)
from tuneloop.torch._member_optim import optimizer_family
from tuneloop.torch._padding import padded_key
from tuneloop.torch._stacked import signature
from tuneloop.torch._stacked_mlp import is_plain_mlp, padded_signature

_TORCH_SCHEDULED = ("one_cycle", "plateau")  # schedules read from a torch scheduler per member

_EVAL_BATCH = 4096


def fit_defaults() -> dict[str, Any]:
    return {k: p.default for k, p in inspect.signature(fit).parameters.items() if p.default is not inspect.Parameter.empty}

@dataclass(eq=False)
class Member:
    """One job's state while its population trains."""

    job: int
    args: dict[str, Any]
    trial: Any
    net: nn.Module
    opt: torch.optim.Optimizer | Hyper  # hyperparameters; a torch optimizer where a schedule or checkpoint needs one
    sched: Any  # a torch scheduler (one_cycle, plateau, a resumed checkpoint's), else None
    train: Batches
    val: Batches
    classify: bool
    final: bool
    prefix: str
    total: int
    n_epochs: int
    horizon: int
    first_epoch: int
    step: int
    rng: torch.Tensor
    key: tuple[Any, ...] = ()
    history: list[dict[str, float]] = field(default_factory=list)
    best: tuple[float, int, dict[str, float]] | None = None
    since_best: int = 0
    stopped: bool = False
    diverged: bool = False
    frozen: tuple[Any, ...] | None = None  # state saved when it stopped mid-epoch (steps reached, diverged)
    final_row: torch.Tensor | None = None
    best_row: torch.Tensor | None = None
    reported: bool = False
    trained_s: float = 0.0  # seconds trained before this run (a checkpoint's): train_time_s counts them
    cost: dict[str, float] | None = None  # params_m and latency_ms, measured on this member's own model
    epoch: int = 0  # the epoch it trains now (its own count: members that joined later count from their start)
    joined_s: float = 0.0  # the population's training seconds when it joined (train_time_s counts from there)

    def __post_init__(self) -> None:
        self.epoch = self.epoch or self.first_epoch

    @property
    def select(self) -> str:
        return f"{self.prefix}acc" if self.classify else f"{self.prefix}loss"

    def better(self, a: float, b: float) -> bool:
        return a > b if self.classify else a < b

    def lr(self) -> float:
        """The learning rate of this member's next update (its schedule at its step)."""
        schedule = self.args["schedule"]
        if schedule in _TORCH_SCHEDULED:
            return float(self.opt.param_groups[0]["lr"])
        return self.args["lr"] * lr_factor(schedule, self.step, self.horizon, self.args["warmup"])

    def torch_optimizer(self) -> torch.optim.Optimizer:
        """A torch optimizer over ``net`` (for a checkpoint), built the first time one is asked for."""
        if isinstance(self.opt, Hyper):
            self.opt = _make_optimizer(self.args, self.net)
        return self.opt


class Hyper:
    """What the engine reads of a member's torch optimizer, without building one: one parameter
    group with ``torch.optim``'s keys and defaults, and no state. Constructing the first torch
    optimizer of a process costs about a second (it imports ``torch._dynamo``), and the engine's own
    per-member optimizers (:mod:`tuneloop.torch._member_optim`) only need these numbers; a real one
    is built where a torch scheduler (one_cycle, plateau), a checkpoint to resume or one to save
    needs it (:meth:`Member.torch_optimizer`). Invalid values fail as torch's optimizers fail."""

    def __init__(self, name: str, params: Any, lr: float, weight_decay: float = 0.0, momentum: float | None = None,
                 betas: Sequence[float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        check_one_of(name, OPTIMIZERS, "optimizer", "fit")
        _at_least(lr, "learning rate")
        _at_least(weight_decay, "weight_decay value")
        group: dict[str, Any] = {"params": list(params), "lr": lr, "weight_decay": weight_decay}
        if name in ("adam", "adamw"):
            _at_least(eps, "epsilon value")
            for i, beta in enumerate(betas):
                if not 0.0 <= beta < 1.0:
                    raise ValueError(f"Invalid beta parameter at index {i}: {beta}")
            group.update(betas=(float(betas[0]), float(betas[1])), eps=eps)
        elif name == "rmsprop":
            _at_least(eps, "epsilon value")
            _at_least(momentum or 0.0, "momentum value")
            group.update(alpha=0.99, eps=eps, momentum=momentum or 0.0)
        else:
            momentum = (0.0 if name == "sgd" else 0.9) if momentum is None else momentum
            _at_least(momentum, "momentum value")
            if name == "nesterov" and momentum <= 0:
                raise ValueError("Nesterov momentum requires a momentum and zero dampening")
            group.update(momentum=momentum)
        self.param_groups = [group]
        self.state: dict[Any, Any] = {}


def _at_least(value: float, what: str) -> None:
    if not value >= 0.0:  # NaN fails too
        raise ValueError(f"Invalid {what}: {value}")


def _make_optimizer(a: Mapping[str, Any], net: nn.Module) -> torch.optim.Optimizer:
    return make_optimizer(a["optimizer"], net.parameters(), a["lr"], a["weight_decay"], a["momentum"], a["betas"],
                          a["eps"])


class _Found:
    """A trial whose checkpoint was already read (``_resume`` reads it through this)."""

    def __init__(self, found: Any) -> None:
        self.found = found

    def load_checkpoint(self) -> Any:
        return self.found

def bucket_groups(jobs: Sequence[Mapping[str, Any]]) -> list[list[int]]:
    """Indices of ``jobs`` that can share a population (the same key as :func:`run_jobs` uses,
    before any checkpoint is read); a job that fails to set up forms a group of its own."""
    groups: dict[Any, list[int]] = {}
    for i, key in enumerate(bucket_keys(jobs)):
        groups.setdefault(key, []).append(i)
    return list(groups.values())


def bucket_keys(jobs: Sequence[Mapping[str, Any]]) -> list[Any]:
    """Each job's bucket key (equal keys can share a population; data enter by content, so keys of
    separate calls compare); a job that fails to set up gets a key of its own."""
    defaults = fit_defaults()
    seen: dict[Any, Any] = {}  # data fingerprints, as in run_jobs
    keys: list[Any] = []
    for i, job in enumerate(jobs):
        try:
            keys.append(prepare(i, {**defaults, **job, "trial": None}, seen).key)
        except Exception:  # noqa: BLE001 - its error surfaces where it is trained
            keys.append(("error", object()))
    return keys

def prepare(job: int, a: dict[str, Any], fingerprints: dict[Any, Any], pad: bool = True) -> Member:
    """What ``fit`` does before its first step, for one job (model built under its seed)."""
    check_positive_int(a["epochs"], "epochs", "fit")
    check_positive_int(a["batch_size"], "batch_size", "fit")
    loss_fn = _loss_fn(a["loss"], a["label_smoothing"])
    trial = a["trial"]
    classify = a["loss"] == "cross_entropy"
    final = _final_phase(trial)
    for name in ("train", "val"):
        if isinstance(a[name], (torch.utils.data.DataLoader, Batches)):
            raise ConfigError(f"The population executor needs {name} as (x, y) arrays or tensors, not a "
                              f"{type(a[name]).__name__}: members read their batches from one shared copy.")
    dev = torch.device(a["device"]) if a["device"] is not None else torch.device(
        "cuda" if torch.cuda.is_available() else "cpu")
    if dev.type == "cpu" and not torch.cuda.is_initialized():
        # what torch.manual_seed does where no CUDA runs, without its call to seed CUDA lazily (which
        # records a stack trace each time: 3 ms a member, a tenth of a small sweep's engine time)
        torch.random.default_generator.manual_seed(a["seed"])
    else:
        torch.manual_seed(a["seed"])
    model = copy.deepcopy(a["model"]) if isinstance(a["model"], nn.Module) else a["model"]  # one per member
    net = build_model(model, dev, a["init_scale"])
    train = batches(a["train"], a["batch_size"], dev, shuffle=True, seed=a["seed"])
    val = batches(a["val"], _EVAL_BATCH, dev, shuffle=False, seed=a["seed"])
    for source, data in ((a["train"], train), (a["val"], val)):  # one copy of each data set on the device
        data.x, data.y = fingerprints.setdefault(("tensors", _source_key(source), str(dev)), (data.x, data.y))
    total = a["steps"] if a["steps"] is not None else train.per_epoch * a["epochs"]
    horizon = _horizon(trial, train.per_epoch, total)
    check_one_of(a["schedule"], SCHEDULES, "schedule", "fit")
    found = trial.load_checkpoint() if trial is not None and hasattr(trial, "load_checkpoint") else None
    opt: torch.optim.Optimizer | Hyper
    if found is None and a["schedule"] not in _TORCH_SCHEDULED:  # no torch optimizer needed (see Hyper)
        opt, sched = Hyper(a["optimizer"], net.parameters(), a["lr"], a["weight_decay"], a["momentum"], a["betas"],
                           a["eps"]), None
        first_epoch, step, trained_s = 1, 0, 0.0
    else:
        opt = _make_optimizer(a, net)
        sched = make_schedule(a["schedule"], opt, horizon, a["warmup"], "max" if classify else "min")
        first_epoch, step, trained_s = _resume(_Found(found), net, opt, sched, a["lr"], a["weight_decay"],
                                               a["momentum"])
    if trial is not None and classify:
        _log_init_loss(net, train, loss_fn, trial)  # in train mode: dropout draws from the seeded stream
    rng = torch.get_rng_state()
    loss_key = a["loss"] if isinstance(a["loss"], str) else getattr(a["loss"], "__code__", a["loss"])
    padded = pad and fast_path(net, a, train)  # plain MLPs of different widths can share a population
    architecture = padded_signature(net) if padded else (pad and padded_key(net)) or signature(net)  # vmap pads too
    optimizer = optimizer_family(a["optimizer"])  # adam with adamw, sgd with momentum and nesterov
    key = (architecture, optimizer, a["batch_size"], _fingerprint(a["train"], train, fingerprints),
           _fingerprint(a["val"], val, fingerprints), loss_key, str(dev), a["amp"], final)  # not the start: each
    # member counts its own epochs and steps, so members resumed at other points, or joining later, train together
    return Member(job, a, trial, net, opt, sched, train, val, classify, final,
                   f"{getattr(trial, 'heldout', 'val')}_", total, math.ceil(total / train.per_epoch), horizon,
                   first_epoch, step, rng, key, trained_s=trained_s)

def _source_key(source: Any) -> Any:
    return tuple(id(part) for part in source) if isinstance(source, (tuple, list)) else id(source)

def _fingerprint(source: Any, data: Batches, seen: dict[Any, str]) -> str:
    """Equal data, equal fingerprint (members of one population read the same batches); hashed
    once per source object (the jobs hold them, so their ids stay theirs during the run)."""
    key = _source_key(source)
    if key not in seen:
        parts = []
        for t in (data.x, data.y):
            host = t.detach().cpu().contiguous()
            digest = hashlib.blake2b(host.numpy().tobytes() if host.dtype != torch.bfloat16
                                     else host.float().numpy().tobytes(), digest_size=16).hexdigest()
            parts.append(f"{tuple(t.shape)}:{t.dtype}:{digest}")
        seen[key] = "|".join(parts)
    return seen[key]

def fast_path(net: nn.Module, args: Mapping[str, Any], train: Batches) -> bool:
    """The hand-written MLP path applies: a plain MLP on flat inputs, a built-in loss, no autocast."""
    return (is_plain_mlp(net) and train.x.dim() == 2 and isinstance(args["loss"], str)
            and not mixed_on(train.x.device, args["amp"]))

def mixed_on(dev: torch.device, amp: bool | None) -> bool:
    return dev.type == "cuda" and amp is not False
