"""The population engine: many ``fit`` runs of one architecture trained in one vectorized pass.

    results = fit_population([dict(model=make_mlp, train=data.train, val=data.val, lr=lr, seed=s, ...)
                              for lr, s in configs])

Each job is the keyword arguments of :func:`tuneloop.torch.fit`, and its result is what
``fit(**job)`` returns, within float rounding: the same initialization (the model is built under
the job's seed), the same data order and dropout masks (each member keeps its own random
streams), the same optimizer rules (:mod:`tuneloop.torch._member_optim`) and schedules, the same
epoch selection, early stopping, reports and checkpoints.

Jobs are grouped into buckets that can share one pass: equal architecture (module types,
configuration and parameter shapes), optimizer kind, batch size, data, loss, device and starting
point. Everything else is a per-member tensor: learning rate and its schedule and warmup,
weight decay, momentum, betas, eps, dropout rate, initialization scale, label smoothing,
gradient clipping, epochs and patience. A bucket too large for memory is split into chunks.
A member that stops (patience, a scheduler's verdict, divergence, its last epoch) leaves the
population: parameters and optimizer state shrink with ``index_select``.
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import math
import resource
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from tuneloop._validation import check_positive_int
from tuneloop.errors import ConfigError
from tuneloop.torch._data import Batches, batches
from tuneloop.torch._fit import (
    FitResult,
    _final_phase,
    _horizon,
    _log_init_loss,
    _loss_fn,
    _mixed_precision,
    _resume,
    build_model,
    finish,
    fit,
    lr_factor,
    make_optimizer,
    make_schedule,
    save_checkpoint,
)
from tuneloop.torch._member_optim import MemberOptimizer
from tuneloop.torch._stacked import is_plain_mlp, padded_signature, signature, stack

_TORCH_SCHEDULED = ("one_cycle", "plateau")  # schedules read from a torch scheduler per member
_EVAL_BATCH = 4096


def _defaults() -> dict[str, Any]:
    return {k: p.default for k, p in inspect.signature(fit).parameters.items() if p.default is not inspect.Parameter.empty}


@dataclass(eq=False)
class _Member:
    """One job's state while its population trains."""

    job: int
    args: dict[str, Any]
    trial: Any
    net: nn.Module
    opt: torch.optim.Optimizer  # a torch optimizer over ``net``: hyperparameters, schedules, checkpoints
    sched: Any
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


def fit_population(jobs: Sequence[Mapping[str, Any]], *, max_members: int | None = None, fast: bool = True,
                   fused: bool | None = None) -> list[FitResult]:
    """Train every job (``fit``'s keyword arguments) together; result i is what ``fit(**jobs[i])``
    returns. ``max_members`` caps a population's size (memory caps it too). ``fast=False`` runs
    plain MLPs through vmap and autograd like any model (the hand-written path is checked against
    it); ``fused=False`` uses the step-by-step Adam instead of torch's fused kernel. Raises the
    first job's error, if any failed; :func:`run_jobs` returns errors in place instead."""
    results = run_jobs(jobs, [job.get("trial") for job in jobs], max_members=max_members, fast=fast, fused=fused)
    for r in results:
        if isinstance(r, BaseException):
            raise r
    return results  # type: ignore[return-value]


def run_jobs(jobs: Sequence[Mapping[str, Any]], trials: Sequence[Any], *, max_members: int | None = None,
             fast: bool = True, fused: bool | None = None) -> list[FitResult | BaseException]:
    """Like :func:`fit_population`, but a job that fails gets its exception as its result."""
    defaults = _defaults()
    results: list[FitResult | BaseException | None] = [None] * len(jobs)
    members: list[_Member] = []
    fingerprints: dict[Any, Any] = {}  # data fingerprints and the shared device copies
    for i, job in enumerate(jobs):
        unknown = set(job) - set(defaults) - {"model", "train", "val"}
        try:
            if unknown:
                raise ConfigError(f"fit got unknown arguments: {', '.join(sorted(unknown))}.")
            members.append(_prepare(i, {**defaults, **job, "trial": trials[i]}, fingerprints, pad=fast))
        except Exception as exc:  # noqa: BLE001 - one bad job must not stop the others
            results[i] = exc
    buckets: dict[tuple[Any, ...], list[_Member]] = {}
    for m in members:
        buckets.setdefault(m.key, []).append(m)
    for bucket in buckets.values():
        cap = max_members or len(bucket)
        for start in range(0, len(bucket), cap):
            _train_chunked(bucket[start:start + cap], results, fast=fast, fused=fused)
    return results  # type: ignore[return-value]


def bucket_groups(jobs: Sequence[Mapping[str, Any]]) -> list[list[int]]:
    """Indices of ``jobs`` that can share a population (the same key as :func:`run_jobs` uses,
    before any checkpoint is read); a job that fails to set up forms a group of its own."""
    defaults, seen, groups = _defaults(), {}, {}
    for i, job in enumerate(jobs):
        try:
            key: Any = _prepare(i, {**defaults, **job, "trial": None}, seen).key
        except Exception:  # noqa: BLE001 - its error surfaces where it is trained
            key = ("error", i)
        groups.setdefault(key, []).append(i)
    return list(groups.values())


# -- setting members up -----------------------------------------------------------------------
def _prepare(job: int, a: dict[str, Any], fingerprints: dict[Any, Any], pad: bool = True) -> _Member:
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
    torch.manual_seed(a["seed"])
    dev = torch.device(a["device"]) if a["device"] is not None else torch.device(
        "cuda" if torch.cuda.is_available() else "cpu")
    model = copy.deepcopy(a["model"]) if isinstance(a["model"], nn.Module) else a["model"]  # one per member
    net = build_model(model, dev, a["init_scale"])
    train = batches(a["train"], a["batch_size"], dev, shuffle=True, seed=a["seed"])
    val = batches(a["val"], _EVAL_BATCH, dev, shuffle=False, seed=a["seed"])
    for source, data in ((a["train"], train), (a["val"], val)):  # one copy of each data set on the device
        data.x, data.y = fingerprints.setdefault(("tensors", _source_key(source), str(dev)), (data.x, data.y))
    total = a["steps"] if a["steps"] is not None else train.per_epoch * a["epochs"]
    horizon = _horizon(trial, train.per_epoch, total)
    opt = make_optimizer(a["optimizer"], net.parameters(), a["lr"], a["weight_decay"], a["momentum"], a["betas"],
                         a["eps"])
    sched = make_schedule(a["schedule"], opt, horizon, a["warmup"], "max" if classify else "min")
    first_epoch, step = _resume(trial, net, opt, sched, a["lr"], a["weight_decay"], a["momentum"])
    if trial is not None and classify:
        _log_init_loss(net, train, loss_fn, trial)  # in train mode: dropout draws from the seeded stream
    rng = torch.get_rng_state()
    loss_key = a["loss"] if isinstance(a["loss"], str) else getattr(a["loss"], "__code__", a["loss"])
    padded = pad and _fast_path(net, a, train)  # plain MLPs of different widths can share a population
    key = (padded_signature(net) if padded else signature(net), a["optimizer"], a["batch_size"], _fingerprint(a["train"], train, fingerprints),
           _fingerprint(a["val"], val, fingerprints), loss_key, str(dev), a["amp"], first_epoch, step, final)
    return _Member(job, a, trial, net, opt, sched, train, val, classify, final,
                   f"{getattr(trial, 'heldout', 'val')}_", total, math.ceil(total / train.per_epoch), horizon,
                   first_epoch, step, rng, key)


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


# -- training one population ------------------------------------------------------------------
def _train_chunked(members: list[_Member], results: list[Any], **options: Any) -> None:
    """Train ``members``, split into chunks that fit in memory; an out-of-memory error before any
    report halves the chunk and tries again."""
    size = min(len(members), _fitting_members(members))
    pending = [members[i:i + size] for i in range(0, len(members), size)]
    while pending:
        chunk = pending.pop(0)
        try:
            _train(chunk, results, **options)
        except (torch.OutOfMemoryError, MemoryError, RuntimeError) as exc:
            out_of_memory = isinstance(exc, (torch.OutOfMemoryError, MemoryError)) or "memory" in str(exc).lower()
            if out_of_memory and len(chunk) > 1 and not any(m.reported for m in chunk):
                half = len(chunk) // 2
                pending[:0] = [chunk[:half], chunk[half:]]
                continue
            for m in chunk:
                if results[m.job] is None:
                    results[m.job] = exc
        except Exception as exc:  # noqa: BLE001 - e.g. a model the engine cannot stack
            for m in chunk:
                if results[m.job] is None:
                    results[m.job] = exc


def _fitting_members(members: list[_Member]) -> int:
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
        budget = 0.5 * _available_ram()
    return max(1, int(budget // per_member))


def _available_ram() -> float:
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


class MemberLoss:
    """Each member's mean loss over its batch, (M,): cross-entropy with its own label smoothing,
    mean squared error, or the members' own loss functions."""

    def __init__(self, members: Sequence[_Member]) -> None:
        self.kind = members[0].args["loss"]
        self.fns = [m.args["loss"] for m in members]
        self.smoothing = [float(m.args["label_smoothing"]) for m in members]

    def keep(self, keep: Sequence[int]) -> None:
        self.fns = [self.fns[i] for i in keep]
        self.smoothing = [self.smoothing[i] for i in keep]

    def _eps(self, out: torch.Tensor) -> torch.Tensor:
        return torch.tensor(self.smoothing, dtype=out.dtype, device=out.device).unsqueeze(1)

    def value(self, out: torch.Tensor, y: torch.Tensor, shared_target: bool = False) -> torch.Tensor:
        if shared_target:
            y = y.expand(out.shape[0], *y.shape)
        if callable(self.kind):
            return torch.stack([fn(out[i], y[i]) for i, fn in enumerate(self.fns)])
        if self.kind == "mse":
            return (out - y.to(out.dtype)).pow(2).flatten(1).mean(1)
        return self._value(out, y, torch.logsumexp(out, -1))

    def _value(self, out: torch.Tensor, y: torch.Tensor, lse: torch.Tensor) -> torch.Tensor:
        """Cross-entropy from the log-sum-exp (log_softmax over 10 classes is 4x slower on CPU)."""
        nll = (lse - out.gather(-1, y.unsqueeze(-1)).squeeze(-1)).mean(1)
        if not any(self.smoothing):
            return nll
        classes = out.shape[-1]
        smooth = (lse * classes - out.sum(-1)).mean(1)  # -sum of log-probabilities over the classes
        eps = self._eps(out).squeeze(1)
        return (1 - eps) * nll + smooth * (eps / classes)

    def value_and_grad(self, out: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(losses (M,), d sum(losses) / d out), by hand for the MLP fast path."""
        n = out.shape[1]
        if self.kind == "mse":
            diff = out - y.to(out.dtype)
            return diff.pow(2).flatten(1).mean(1), diff.mul_(2.0 / diff[0].numel())
        lse = torch.logsumexp(out, -1)
        losses = self._value(out, y, lse)
        grad = (out - lse.unsqueeze(-1)).exp_()  # the softmax, 20x faster than torch.softmax over 10 classes
        if any(self.smoothing):
            eps = self._eps(out).unsqueeze(2)
            grad.sub_(eps / out.shape[-1])
            grad.scatter_add_(-1, y.unsqueeze(-1), -(1 - eps).expand(-1, n, 1).contiguous())
        else:
            grad.scatter_add_(-1, y.unsqueeze(-1), torch.full_like(grad[..., :1], -1.0))
        return losses, grad.div_(n)


class Population:
    """The members being trained now: stacked model, optimizer, random streams, bookkeeping."""

    def __init__(self, members: list[_Member], *, fast: bool = True, fused: bool | None = None) -> None:
        first = members[0]
        self.members = list(members)
        self.device = first.train.x.device
        self.model = stack([m.net for m in members], fast=fast and _fast_path(first.net, first.args, first.train))
        self.optim = MemberOptimizer(first.args["optimizer"], self.model.blocks, [m.opt for m in members], fused=fused,
                                     shapes=getattr(self.model, "member_shapes", None))
        self.generators = []
        for m in members:
            if self.device.type == "cuda":
                gen = torch.Generator(device=self.device).manual_seed(m.args["seed"])
            else:
                gen = torch.Generator()
                gen.set_state(m.rng)
            self.generators.append(gen)
        self.best = None if first.final else [b.detach().clone() for b in self.model.blocks]
        n_val = first.val.n
        self.outputs: torch.Tensor | None = None  # every member's held-out outputs of the last epoch
        self.best_outputs: torch.Tensor | None = None  # ... of its selected epoch (slices, predictions)
        self.keep_outputs = len(members) * max(n_val, 0) * _classes(first) <= _KEEP_OUTPUTS
        self.loss = MemberLoss(members)
        self.clip = [m.args["clip"] for m in members]

    def clip_and_norm(self, grads: list[torch.Tensor], need_norm: bool) -> list[float] | None:
        """Clip each member's gradient to its own threshold (as ``clip_grad_norm_``); the norms
        before clipping when asked or clipping."""
        clipping = any(c is not None for c in self.clip)
        if not (clipping or need_norm):
            return None
        norms = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.flatten(1), dim=1) for g in grads],
                                                     1), dim=1)
        if clipping:
            limit = torch.tensor([math.inf if c is None else float(c) for c in self.clip], dtype=norms.dtype,
                                 device=norms.device)
            coef = (limit / (norms + 1e-6)).clamp(max=1.0)
            for g in grads:
                g.mul_(coef.view(-1, *([1] * (g.dim() - 1))))
        return norms.tolist()

    def keep(self, keep: list[int]) -> None:
        """Only the members at ``keep`` go on."""
        index = torch.tensor(keep, dtype=torch.long, device=self.device)
        self.members = [self.members[i] for i in keep]
        self.generators = [self.generators[i] for i in keep]
        self.clip = [self.clip[i] for i in keep]
        self.loss.keep(keep)
        self.model.select(keep)
        self.optim.select(self.model.blocks, keep)
        if self.best is not None:
            self.best = [b.index_select(0, index) for b in self.best]
        if self.outputs is not None:
            self.outputs = self.outputs.index_select(0, index)
        if self.best_outputs is not None:
            self.best_outputs = self.best_outputs.index_select(0, index)

    @torch.no_grad()
    def exploit(self, src: int, dst: int, **hyper: float) -> None:
        """PBT in place: member ``dst`` takes ``src``'s parameters and optimizer state, then the
        hyperparameters given (``lr=...``, ``weight_decay=...``, ``momentum=...``, ``beta1=...``)."""
        if self.optim.shapes[src] != self.optim.shapes[dst]:
            raise ConfigError("exploit copies a member over one of the same shapes; these two differ in width.")
        self.model.set_member(dst, self.model.member(src))
        self.optim.copy_member(src, dst)
        member = self.members[dst]
        for name, value in hyper.items():
            if name == "lr":
                member.args["lr"] = float(value)
                for group in member.opt.param_groups:
                    group["lr"] = float(value)
            elif name in self.optim.hyper:
                values = list(self.optim.hyper[name])
                values[dst] = float(value)
                self.optim.set_hyper(name, values)
            else:
                raise ConfigError(f"exploit cannot set {name!r}; it sets lr, {', '.join(self.optim.hyper)}.")

    def freeze(self, i: int) -> None:
        """Member i stops updating mid-epoch: keep its state to put back at the epoch's end."""
        self.members[i].frozen = (self.model.member(i), self.optim.member_state(i), self.generators[i].get_state())

    def thaw(self) -> None:
        for i, m in enumerate(self.members):
            if m.frozen is not None:
                values, state, rng = m.frozen
                self.model.set_member(i, values)
                self.optim.restore_member(i, state)
                self.generators[i].set_state(rng)
                m.frozen = None

    @torch.no_grad()
    def evaluate(self) -> list[dict[str, float]]:
        """Every member's held-out loss (and accuracy), as ``evaluate`` computes them for one model."""
        first = self.members[0]
        n_members = len(self.members)
        loss_sum = torch.zeros(n_members, dtype=torch.float64, device=self.device)
        correct = torch.zeros(n_members, dtype=torch.long, device=self.device)
        n = 0
        kept = []
        for x, y in first.val.epoch(0):
            with torch.no_grad():
                out = self.model.forward(x, shared_input=True, train=False).float()
            loss_sum += self.loss.value(out, y, shared_target=True).double() * len(y)
            if first.classify:
                correct += (out.argmax(-1) == y).sum(1)
            n += len(y)
            if self.keep_outputs:
                kept.append(out)
        self.outputs = torch.cat(kept, 1) if kept else None
        losses, hits = (loss_sum / max(n, 1)).tolist(), (correct.double() / max(n, 1)).tolist()
        return [{f"{m.prefix}loss": losses[i], **({f"{m.prefix}acc": hits[i]} if m.classify else {})}
                for i, m in enumerate(self.members)]


_KEEP_OUTPUTS = 2**25  # keep held-out outputs (for slices and predictions) up to this many numbers


def _classes(member: _Member) -> int:
    """Outputs per example, measured on one example (for the memory check of kept outputs)."""
    with torch.no_grad():
        was = member.net.training
        member.net.eval()
        out = member.net(member.val.x[:1])
        member.net.train(was)
    return int(out[0].numel())


def _fast_path(net: nn.Module, args: Mapping[str, Any], train: Batches) -> bool:
    """The hand-written MLP path applies: a plain MLP on flat inputs, a built-in loss, no autocast."""
    return (is_plain_mlp(net) and train.x.dim() == 2 and isinstance(args["loss"], str)
            and not _mixed(train.x.device, args["amp"]))


def _mixed(dev: torch.device, amp: bool | None) -> bool:
    return dev.type == "cuda" and amp is not False


def _train(members: list[_Member], results: list[Any], **options: Any) -> None:
    """The epoch loop of ``fit``, for a population."""
    pop = Population(members, **options)
    first = members[0]
    dev = pop.device
    autocast, _ = _mixed_precision(dev, first.args["amp"])
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    x_all, y_all = first.train.x, first.train.y
    per_epoch, size = first.train.per_epoch, first.args["batch_size"]
    start_members = len(members)
    epoch = first.first_epoch
    while pop.members:
        orders = torch.stack([m.train.order(epoch) for m in pop.members])
        loss_sum = torch.zeros(len(pop.members), dtype=torch.float64, device=dev)
        seen = [0] * len(pop.members)
        for i in range(per_epoch):
            for j, m in enumerate(pop.members):
                if m.frozen is None and m.step >= m.total:
                    pop.freeze(j)
            active = [j for j, m in enumerate(pop.members) if m.frozen is None]
            if not active:
                break
            index = orders[:, i * size:(i + 1) * size]
            xb, yb = x_all[index], y_all[index]
            lrs = [m.lr() for m in pop.members]
            _one_cycle_hyper(pop)
            noise = pop.model.noise(xb, pop.generators)
            values, grads = pop.model.loss_and_grad(xb, yb, noise, pop.loss, autocast)
            logging = [j for j, m in enumerate(pop.members)
                       if m.frozen is None and m.trial is not None and m.args["log_every"]
                       and m.step % m.args["log_every"] == 0]
            norms = pop.clip_and_norm(grads, bool(logging))
            pop.optim.step(grads, lrs)
            finite = torch.isfinite(values)
            bad = [] if bool(finite.all()) else [j for j in range(len(pop.members)) if not bool(finite[j])]
            listed = values.tolist() if logging else None
            for j in logging:
                m = pop.members[j]
                extra = {} if norms is None else {"grad_norm": norms[j]}
                m.trial.log(m.step, **{"step/train_loss": listed[j], "step/lr": lrs[j]}, **extra)
            counted = torch.where(finite, values.double(), 0.0) * index.shape[1]
            if len(active) < len(pop.members):  # members stopped mid-epoch add nothing
                counted[[j for j in range(len(pop.members)) if j not in set(active)]] = 0.0
            loss_sum += counted
            for j, m in enumerate(pop.members):
                if m.frozen is None:
                    if m.args["schedule"] == "one_cycle":
                        _quiet_step(m.sched)
                    m.step += 1
                    seen[j] += index.shape[1]
            for j in bad:
                pop.members[j].diverged = True
                pop.freeze(j)
        pop.thaw()
        _end_epoch(pop, epoch, loss_sum.tolist(), seen, results, start_members)
        epoch += 1


def _one_cycle_hyper(pop: Population) -> None:
    """one_cycle also cycles momentum (beta1 for Adam): read each member's from its torch scheduler."""
    cycling = [j for j, m in enumerate(pop.members) if m.args["schedule"] == "one_cycle"]
    if not cycling:
        return
    for name in ("momentum", "beta1"):
        values = list(pop.optim.hyper[name])
        for j in cycling:
            group = pop.members[j].opt.param_groups[0]
            if name == "momentum" and "momentum" in group:
                values[j] = float(group["momentum"])
            elif name == "beta1" and "betas" in group:
                values[j] = float(group["betas"][0])
        if values != pop.optim.hyper[name]:
            pop.optim.set_hyper(name, values)


def _quiet_step(sched: Any, *args: Any) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sched.step(*args)


def _end_epoch(pop: Population, epoch: int, loss_sums: list[float], seen: list[int], results: list[Any],
               start_members: int) -> None:
    """Report each member's epoch, select and stop as ``fit`` does; members that ended leave."""
    evaluated = pop.evaluate()
    leaving = []
    improved = []
    for j, m in enumerate(pop.members):
        if m.diverged:
            metrics = {"train_loss": math.nan, f"{m.prefix}loss": math.nan,
                       **({m.select: math.nan} if m.classify else {})}
        else:
            metrics = {"train_loss": loss_sums[j] / max(seen[j], 1), **evaluated[j]}
        m.history.append({"epoch": float(epoch), **metrics})
        if m.trial is not None:
            m.trial.report(epoch, **metrics)
            m.reported = True
        if m.diverged:
            m.stopped = True
            leaving.append(j)
            continue
        if m.args["schedule"] == "plateau":
            _quiet_step(m.sched, metrics["train_loss"] if m.final else metrics[m.select])
        if m.final or m.best is None or m.better(metrics[m.select], m.best[0]):
            m.best, m.since_best = (metrics[m.select], epoch, metrics), 0
            improved.append(j)
        else:
            m.since_best += 1
        patience = m.args["patience"]
        if (m.trial is not None and m.trial.should_stop()) or (
                not m.final and patience is not None and m.since_best >= patience):
            m.stopped = True
            leaving.append(j)
        elif epoch >= m.n_epochs:
            leaving.append(j)
    if pop.best is not None and improved:
        index = torch.tensor(improved, dtype=torch.long, device=pop.device)
        with torch.no_grad():
            for best, block in zip(pop.best, pop.model.blocks):
                best[index] = block.index_select(0, index)
            if pop.outputs is not None:
                if pop.best_outputs is None:
                    pop.best_outputs = pop.outputs.clone()
                pop.best_outputs[index] = pop.outputs.index_select(0, index)
    if not leaving:
        return
    for j in leaving:
        _leave(pop, j, results, start_members)
    pop.keep([j for j in range(len(pop.members)) if j not in set(leaving)])


def _leave(pop: Population, j: int, results: list[Any], start_members: int) -> None:
    """Member j is done: its checkpoint, its selected model, its slices and predictions, its result."""
    m = pop.members[j]
    trial = m.trial
    if trial is not None and getattr(trial, "checkpointing", False) and m.history:
        state = pop.model.state_dict(pop.model.member(j), m.net)
        optimizer = pop.optim.export(j, m.opt, m.lr())
        save_checkpoint(trial, m.history, state, optimizer, m.step, pop.generators[j].get_state())
    m.net.load_state_dict(pop.model.state_dict(pop.model.member(j, pop.best), m.net))
    if trial is not None:
        trial.log(m.step, **{"population/members": float(start_members),
                             "population/peak_mb": peak_memory_mb(pop.device)})
    if m.best is None:
        results[m.job] = FitResult(m.net, 0, m.history[-1], m.history, stopped_early=True)
        return
    kept = pop.outputs if m.final else pop.best_outputs
    outputs = None if kept is None else (kept[j].cpu(), m.val.y.cpu())
    finish(trial, m.net, m.best[1], m.classify, m.args["slices"], m.args["predictions"], m.prefix, m.val,
           m.args["seed"], outputs)
    results[m.job] = FitResult(m.net, m.best[1], dict(m.best[2]), m.history, stopped_early=m.stopped)

