"""Per-member optimizers for the population engine.

``torch.optim`` takes one learning rate per parameter group, but a population holds each
parameter of M members as one (M, ...) block, each member with its own learning rate, weight
decay, momentum, betas and eps. These optimizers follow ``torch.optim``'s single-tensor update
rules (SGD with momentum/Nesterov, Adam, AdamW, RMSprop) line by line, with every
hyperparameter an (M, 1, ...) column, in place on the blocks.

Members of one optimizer *family* share a population, each with its own rule: Adam and AdamW
differ only in where weight decay goes (a coupled and a decoupled column, the other one 0: in
floating point ``g + 0 * p == g`` and ``p * (1 - lr * 0) == p`` exactly); SGD, momentum and Nesterov
differ in the momentum (0: no buffer) and in Nesterov's look-ahead (a per-member column and mask).

Adam and AdamW take a fused path where torch has one (``torch._fused_adam_``, one pass over
memory instead of ten): the fused kernel computes each member's unscaled step into a scratch
buffer with lr = 1, and one multiply-add applies the members' learning rates. That reorders
one multiplication, so results equal ``torch.optim``'s to rounding (``fused=False`` is exact).

Members' state converts to and from a ``torch.optim`` optimizer, so checkpoints are
interchangeable with sequential ``fit``. Members start from anything with a torch optimizer's
``param_groups`` and ``state``: the population path builds no torch optimizer unless a schedule or
checkpoint needs one.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum
from typing import Any

import torch

from tuneloop._validation import check_one_of
from tuneloop.errors import ConfigError
from tuneloop.torch._stacked_mlp import region

Placement = Sequence[Sequence[tuple[int, tuple[slice, ...]]]]  # see MemberOptimizer.placement


class Family(Enum):
    """Optimizers whose members train in one population, each by its own rule."""

    ADAM = "adam"  # adam, adamw
    SGD = "sgd"  # sgd, momentum, nesterov
    RMSPROP = "rmsprop"


_FAMILY = {"adam": Family.ADAM, "adamw": Family.ADAM, "momentum": Family.SGD, "nesterov": Family.SGD,
           "rmsprop": Family.RMSPROP, "sgd": Family.SGD}
_STATE = {Family.ADAM: ("exp_avg", "exp_avg_sq"), Family.SGD: ("momentum_buffer",),
          Family.RMSPROP: ("square_avg", "momentum_buffer")}


def optimizer_family(name: str) -> Family:
    """The family of ``fit``'s optimizer ``name``: members of one family can share a population.

    >>> optimizer_family("adamw")
    <Family.ADAM: 'adam'>
    """
    return _FAMILY[check_one_of(name, _FAMILY, "optimizer", "fit")]


class MemberOptimizer:
    """Per-member optimizers of one family over parameter blocks (M, ...); hyperparameters are
    per-member columns. ``kinds`` is ``fit``'s optimizer name of every member, or one name for all."""

    def __init__(self, kinds: str | Sequence[str], params: Sequence[torch.Tensor], optimizers: Sequence[Any], *,
                 fused: bool | None = None, placement: Placement | None = None,
                 shapes: Sequence[Sequence[tuple[int, ...]]] | None = None) -> None:
        self.kinds = [kinds] * len(optimizers) if isinstance(kinds, str) else list(kinds)
        families = {optimizer_family(kind) for kind in self.kinds}
        if len(families) != 1 or len(self.kinds) != len(optimizers):
            raise ConfigError(f"One population trains one optimizer family (adam/adamw, sgd/momentum/nesterov or "
                              f"rmsprop), one kind per member; got {self.kinds} for {len(optimizers)} members.")
        self.family = families.pop()
        self.params = list(params)
        # placement[m][j] = (k, where): member m's j-th own parameter is params[k][m][where]; the rest of
        # block k is padding (zero, zero gradient). ``shapes`` (leading corners, block k == parameter k) is
        # the older spelling of the same thing; neither: every member owns every block whole.
        if placement is None:
            placement = ([[(k, region(s)) for k, s in enumerate(member)] for member in shapes] if shapes is not None
                         else [[(k, region(p.shape[1:])) for k, p in enumerate(self.params)] for _ in optimizers])
        self.placement: list[list[tuple[int, tuple[slice, ...]]]] = [
            [(int(k), tuple(where)) for k, where in member] for member in placement]
        groups = [opt.param_groups[0] for opt in optimizers]
        # a resumed torch optimizer runs the rule its checkpoint's group names, as in fit: follow it
        self.kinds = [_rule(kind, group) for kind, group in zip(self.kinds, groups)]
        self.hyper: dict[str, list[float]] = _hyper(groups)
        self.steps = [0] * len(optimizers)
        self.state = {name: [torch.zeros_like(p) for p in self.params] for name in _STATE[self.family]}
        self.started = [False] * len(optimizers)  # SGD's momentum buffer starts as the first gradient
        device = self.params[0].device.type
        adam = self.family is Family.ADAM
        self.fused = (adam and hasattr(torch, "_fused_adam_") and device in ("cpu", "cuda")
                      if fused is None else adam and bool(fused))
        self._scratch = [torch.empty_like(p) for p in self.params] if self.family is not Family.SGD else []
        for m, opt in enumerate(optimizers):
            self._load(m, opt)
        self._columns()

    # -- hyperparameters ------------------------------------------------------------------
    def _columns(self) -> None:
        self.col = {name: self._column(values) for name, values in self.hyper.items()}
        nesterov = [k == "nesterov" for k in self.kinds]
        self._any_nesterov = any(nesterov)
        self._nesterov_rows: list[torch.Tensor] | None = None if all(nesterov) or not any(nesterov) else [
            torch.tensor(nesterov, device=p.device).view(-1, *([1] * (p.dim() - 1))) for p in self.params]
        self._rules()

    def _rules(self) -> None:
        """The columns that give each member its own kind's rule within the family: Adam's weight decay
        goes into the gradient, AdamW's onto the parameter (0 in the other column); Nesterov's members
        look ahead by their momentum (0 for the others)."""
        wd, mom = self.hyper["weight_decay"], self.hyper["momentum"]
        decoupled = [k == "adamw" for k in self.kinds]
        self.col["coupled_decay"] = self._column([0.0 if d else w for d, w in zip(decoupled, wd)])
        self.col["decoupled_decay"] = self._column([w if d else 0.0 for d, w in zip(decoupled, wd)])
        self.col["look_ahead"] = self._column([m if k == "nesterov" else 0.0 for k, m in zip(self.kinds, mom)])

    def _column(self, values: Sequence[float]) -> Any:
        """A float where every member shares the value, else a list of (M, 1, ...) columns, one per block."""
        if all(v == values[0] for v in values):
            return float(values[0]) if values else 0.0  # no member left: nothing reads it
        base = torch.tensor(list(values), dtype=self.params[0].dtype, device=self.params[0].device)
        return [base.view(-1, *([1] * (p.dim() - 1))) for p in self.params]

    def set_hyper(self, name: str, values: Sequence[float]) -> None:
        """Change one hyperparameter of every member (PBT's explore step, one_cycle's momentum)."""
        self.hyper[name] = [float(v) for v in values]
        self.col[name] = self._column(self.hyper[name])
        if name in ("weight_decay", "momentum"):
            self._rules()

    # -- the update -----------------------------------------------------------------------
    @torch.no_grad()
    def step(self, grads: Sequence[torch.Tensor], lr: Sequence[float]) -> None:
        """One update of every member with its learning rate; ``grads`` are consumed (changed in place)."""
        self.steps = [s + 1 for s in self.steps]
        lr_col = self._column(lr)
        if self.family is Family.SGD:
            # a member's buffer starts as its gradient at its first step with momentum (torch.optim.SGD)
            keep = self._column([m if s else 0.0 for m, s in zip(self.hyper["momentum"], self.started)])
            # a buffer whose member's momentum went to 0 (PBT) stays as it was, unused, as in torch.optim.SGD
            idle = [i for i, (m, s) in enumerate(zip(self.hyper["momentum"], self.started)) if s and m == 0]
            held = [buf[idle] for buf in self.state["momentum_buffer"]] if idle else []
            for k, (p, g) in enumerate(zip(self.params, grads)):
                self._sgd(k, p, g, _at(lr_col, k), _at(keep, k))
            for buf, rows in zip(self.state["momentum_buffer"], held):
                buf[idle] = rows
            self.started = [s or m != 0 for s, m in zip(self.started, self.hyper["momentum"])]
            return
        for k, (p, g) in enumerate(zip(self.params, grads)):
            if self.family is Family.RMSPROP:
                self._rmsprop(k, p, g, _at(lr_col, k))
            elif not self.fused:
                self._adam(k, p, g, lr, _at(lr_col, k))
        if self.fused:
            self._fused_adam(list(grads), lr_col)
        self.started = [True] * len(self.started)

    def _decay_into(self, k: int, p: torch.Tensor, g: torch.Tensor) -> None:
        """grad += weight_decay * param (L2 in the gradient, as torch.optim does outside AdamW)."""
        wd = _at(self.col["coupled_decay"], k)
        if isinstance(wd, float):
            if wd != 0:
                g.add_(p, alpha=wd)
        else:
            g.addcmul_(p, wd)

    def _decoupled_decay(self, k: int, p: torch.Tensor, lr_col: Any) -> None:
        """AdamW: param.mul_(1 - lr * weight_decay)."""
        wd = _at(self.col["decoupled_decay"], k)
        if not (isinstance(wd, float) and wd == 0):
            p.mul_(1 - lr_col * wd)

    def _adam(self, k: int, p: torch.Tensor, g: torch.Tensor, lr: Sequence[float], lr_col: Any) -> None:
        m, v, s = self.state["exp_avg"][k], self.state["exp_avg_sq"][k], self._scratch[k]
        self._decoupled_decay(k, p, lr_col)  # AdamW's members (p * 1 for Adam's), then Adam's (g + 0 * p for AdamW's)
        self._decay_into(k, p, g)
        b1, b2, eps = (_at(self.col[n], k) for n in ("beta1", "beta2", "eps"))
        m.lerp_(g, 1 - b1)
        v.mul_(b2)
        if isinstance(b2, float):
            v.addcmul_(g, g, value=1 - b2)
        else:
            torch.mul(g, g, out=s)
            v.addcmul_(s, 1 - b2)
        n = len(self.steps)
        bias1 = [1 - self.hyper["beta1"][i] ** self.steps[i] for i in range(n)]
        bias2 = [(1 - self.hyper["beta2"][i] ** self.steps[i]) ** 0.5 for i in range(n)]
        step_size = _at(self._column([-lr[i] / bias1[i] for i in range(n)]), k)
        torch.sqrt(v, out=s)
        s.div_(_at(self._column(bias2), k)).add_(eps)
        torch.mul(m, step_size, out=g)  # addcdiv's order: (value * exp_avg) / denom
        g.div_(s)
        p.add_(g)

    def _fused_adam(self, grads: list[torch.Tensor], lr_col: Any) -> None:
        """torch's fused kernel with lr = 1 into scratch, then param += lr * scratch per member."""
        for k, (p, g) in enumerate(zip(self.params, grads)):
            self._decoupled_decay(k, p, _at(lr_col, k))
            self._decay_into(k, p, g)
            self._scratch[k].zero_()
        keys = [(self.hyper["beta1"][i], self.hyper["beta2"][i], self.hyper["eps"][i], self.steps[i])
                for i in range(len(self.steps))]
        exp_avg, exp_avg_sq = self.state["exp_avg"], self.state["exp_avg_sq"]
        if all(key == keys[0] for key in keys):  # one call over whole blocks
            b1, b2, eps, step = keys[0]
            steps = [torch.tensor(float(step), device=p.device) for p in self.params]
            torch._fused_adam_(self._scratch, grads, exp_avg, exp_avg_sq, [], steps, lr=1.0, beta1=b1, beta2=b2,
                               weight_decay=0.0, eps=eps, amsgrad=False, maximize=False)
        else:  # members grouped by (betas, eps, step): one call over their rows
            for key in dict.fromkeys(keys):
                rows = [i for i, other in enumerate(keys) if other == key]
                pick = [(k, i) for k in range(len(self.params)) for i in rows]
                b1, b2, eps, step = key
                torch._fused_adam_(
                    [self._scratch[k][i] for k, i in pick], [grads[k][i] for k, i in pick],
                    [exp_avg[k][i] for k, i in pick], [exp_avg_sq[k][i] for k, i in pick], [],
                    [torch.tensor(float(step), device=self.params[0].device) for _ in pick], lr=1.0, beta1=b1,
                    beta2=b2, weight_decay=0.0, eps=eps, amsgrad=False, maximize=False)
        for k, p in enumerate(self.params):
            lr = _at(lr_col, k)
            if isinstance(lr, float):
                p.add_(self._scratch[k], alpha=lr)
            else:
                p.addcmul_(self._scratch[k], lr)

    def _sgd(self, k: int, p: torch.Tensor, g: torch.Tensor, lr_col: Any, keep: Any) -> None:
        """torch.optim.SGD per member: no buffer at momentum 0 (there the buffer row is just the
        gradient: kept 0 times), Nesterov's members step along g + momentum * buf, the others along buf."""
        self._decay_into(k, p, g)
        mom = _at(self.col["momentum"], k)
        if not (isinstance(mom, float) and mom == 0):
            buf = self.state["momentum_buffer"][k]
            if isinstance(keep, float) and keep == 0:
                buf.copy_(g)
            else:
                buf.mul_(keep).add_(g)
            look = _at(self.col["look_ahead"], k)
            if not self._any_nesterov:
                g = buf
            else:
                g.add_(buf, alpha=look) if isinstance(look, float) else g.addcmul_(buf, look)
                if self._nesterov_rows is not None:  # the others step along their buffer
                    torch.where(self._nesterov_rows[k], g, buf, out=g)
        if isinstance(lr_col, float):
            p.add_(g, alpha=-lr_col)
        else:
            p.addcmul_(g, -lr_col)

    def _rmsprop(self, k: int, p: torch.Tensor, g: torch.Tensor, lr_col: Any) -> None:
        self._decay_into(k, p, g)
        sq, s = self.state["square_avg"][k], self._scratch[k]
        alpha = _at(self.col["alpha"], k)
        sq.mul_(alpha)
        torch.mul(g, g, out=s)
        sq.add_(s, alpha=1 - alpha) if isinstance(alpha, float) else sq.addcmul_(s, 1 - alpha)
        torch.sqrt(sq, out=s)
        s.add_(_at(self.col["eps"], k))
        mom = _at(self.col["momentum"], k)
        if not (isinstance(mom, float) and mom == 0):
            buf = self.state["momentum_buffer"][k]
            buf.mul_(mom).addcdiv_(g, s)
            g = buf
        else:
            g.div_(s)
        if isinstance(lr_col, float):
            p.add_(g, alpha=-lr_col)
        else:
            p.addcmul_(g, -lr_col)

    # -- members come and go --------------------------------------------------------------
    def select(self, params: Sequence[torch.Tensor], keep: Sequence[int]) -> None:
        """Keep only the members at ``keep`` (``params`` are the new blocks): the population shrinks."""
        index = torch.tensor(list(keep), dtype=torch.long, device=params[0].device)
        self.params = list(params)
        self.state = {k: [t.index_select(0, index) for t in v] for k, v in self.state.items()}
        self._scratch = [torch.empty_like(p) for p in self.params] if self._scratch else []
        self.steps = [self.steps[i] for i in keep]
        self.started = [self.started[i] for i in keep]
        self.placement = [self.placement[i] for i in keep]
        self.kinds = [self.kinds[i] for i in keep]
        self.hyper = {k: [v[i] for i in keep] for k, v in self.hyper.items()}
        self._columns()

    @torch.no_grad()
    def extend(self, params: Sequence[torch.Tensor], kinds: Sequence[str], optimizers: Sequence[Any],
               placement: Placement) -> None:
        """Members join after the others (``params`` are the grown blocks, the joiners' rows last): their
        kinds (of this family), hyperparameters and state (fresh, or a resumed torch optimizer's), the
        inverse of :meth:`select`."""
        if {optimizer_family(kind) for kind in kinds} - {self.family} or len(kinds) != len(optimizers) or len(
                placement) != len(optimizers):
            raise ConfigError(f"Members joining a population keep its optimizer family ({self.family.value}), one kind "
                              f"and placement per member; got {list(kinds)} for {len(optimizers)} members.")
        start, n = len(self.steps), len(optimizers)
        self.params = list(params)
        self.state = {name: [torch.cat([t, t.new_zeros((n, *t.shape[1:]))]) for t in blocks]
                      for name, blocks in self.state.items()}
        self._scratch = [torch.empty_like(p) for p in self.params] if self.family is not Family.SGD else []
        self.steps += [0] * n
        self.started += [False] * n
        self.placement += [[(int(k), tuple(where)) for k, where in member] for member in placement]
        groups = [opt.param_groups[0] for opt in optimizers]
        self.kinds += [_rule(kind, group) for kind, group in zip(kinds, groups)]
        for name, values in _hyper(groups).items():
            self.hyper[name] += values
        for i, opt in enumerate(optimizers):
            self._load(start + i, opt)
        self._columns()

    @torch.no_grad()
    def copy_member(self, src: int, dst: int) -> None:
        """Member ``dst`` takes ``src``'s optimizer state (PBT's exploit; the parameters are the caller's);
        both must have the same placement."""
        for blocks in self.state.values():
            for t in blocks:
                t[dst] = t[src]
        self.steps[dst], self.started[dst] = self.steps[src], self.started[src]

    def member_state(self, m: int) -> tuple[dict[str, list[torch.Tensor]], int, bool]:
        return {k: [t[m].clone() for t in v] for k, v in self.state.items()}, self.steps[m], self.started[m]

    @torch.no_grad()
    def restore_member(self, m: int, saved: tuple[dict[str, list[torch.Tensor]], int, bool]) -> None:
        state, self.steps[m], self.started[m] = saved
        for k, rows in state.items():
            for t, row in zip(self.state[k], rows):
                t[m] = row

    # -- torch.optim interchange ----------------------------------------------------------
    def _load(self, m: int, opt: Any) -> None:
        """Member ``m``'s hyperparameters and state from a torch optimizer over its own module (a resumed
        checkpoint's), or from anything with its ``param_groups`` and ``state`` (``_population._jobs.Hyper``)."""
        params = opt.param_groups[0]["params"]
        if len(params) != len(self.placement[m]):
            raise ValueError(f"member {m} has {len(params)} parameters but a placement of {len(self.placement[m])}")
        for j, param in enumerate(params):
            k, where = self.placement[m][j]
            state = opt.state.get(param, {})
            for name in self.state:
                if name in state and state[name] is not None:
                    self.state[name][k][m][where] = state[name].to(self.params[k])
                    self.started[m] = True
            if "step" in state:
                self.steps[m] = int(float(state["step"]))

    def export(self, m: int, opt: torch.optim.Optimizer, lr: float) -> dict[str, Any]:
        """Member ``m``'s state as ``opt.state_dict()`` of a torch optimizer over its own module."""
        group = opt.param_groups[0]
        group["lr"], group["weight_decay"] = lr, self.hyper["weight_decay"][m]
        if "momentum" in group:
            group["momentum"] = self.hyper["momentum"][m]
        if "betas" in group:
            group["betas"] = (self.hyper["beta1"][m], self.hyper["beta2"][m])
        for j, param in enumerate(group["params"]):
            k, where = self.placement[m][j]
            entry: dict[str, Any] = {}
            if self.family is not Family.SGD:
                entry["step"] = torch.tensor(float(self.steps[m]))
            for name, blocks in self.state.items():
                if name == "momentum_buffer" and (not self.started[m] or (
                        self.family is Family.RMSPROP and group.get("momentum", 0) == 0)):
                    continue
                entry[name] = blocks[k][m][where].clone()
            if entry:
                opt.state[param] = entry
        return opt.state_dict()


def _hyper(groups: Sequence[dict[str, Any]]) -> dict[str, list[float]]:
    """The members' hyperparameter columns from their optimizers' parameter groups."""
    return {
        "weight_decay": [float(g["weight_decay"]) for g in groups],
        "momentum": [float(g.get("momentum", 0.0)) for g in groups],
        "beta1": [float(g["betas"][0]) if "betas" in g else 0.0 for g in groups],
        "beta2": [float(g["betas"][1]) if "betas" in g else 0.0 for g in groups],
        "eps": [float(g.get("eps", 0.0)) for g in groups],
        "alpha": [float(g.get("alpha", 0.0)) for g in groups],
    }


def _rule(kind: str, group: dict[str, Any]) -> str:
    """The kind whose rule a member follows: its own, unless its optimizer's group says otherwise."""
    if optimizer_family(kind) is Family.ADAM:
        return "adamw" if group.get("decoupled_weight_decay", kind == "adamw") else "adam"
    if optimizer_family(kind) is Family.SGD and group.get("nesterov", kind == "nesterov"):
        return "nesterov"
    return kind


def _at(col: Any, k: int) -> Any:
    """A hyperparameter for block k: the shared float, or that block's column."""
    return col if isinstance(col, float) else col[k]
