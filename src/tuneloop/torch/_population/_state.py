"""The members being trained now: stacked model, optimizer, random streams, bookkeeping."""

from __future__ import annotations

import math

import torch

from tuneloop.errors import ConfigError
from tuneloop.torch._member_optim import MemberOptimizer
from tuneloop.torch._population._jobs import Member, fast_path
from tuneloop.torch._population._loss import MemberLoss
from tuneloop.torch._stacked_mlp import stack


class Population:
    """The members being trained now: stacked model, optimizer, random streams, bookkeeping."""

    def __init__(self, members: list[Member], *, fast: bool = True, fused: bool | None = None,
                 exact: bool = False) -> None:
        first = members[0]
        self.exact = exact  # dropout masks drawn as nn.Dropout draws them (sequential-equal), else batched
        self.members = list(members)
        self.device = first.train.x.device
        self.model = stack([m.net for m in members], fast=fast and fast_path(first.net, first.args, first.train))
        self.optim = MemberOptimizer([m.args["optimizer"] for m in members], self.model.blocks,  # one family
                                     [m.opt for m in members], fused=fused, placement=getattr(self.model, "placement", None),
                                     shapes=getattr(self.model, "member_shapes", None))
        self.key = first.key  # what a member joining later must share (Member.key: not its start)
        self.generators = [self._generator(m) for m in members]
        self.best = None if first.final else [b.detach().clone() for b in self.model.blocks]
        n_val = first.val.n
        self.outputs: torch.Tensor | None = None  # every member's held-out outputs of the last epoch
        self.best_outputs: torch.Tensor | None = None  # ... of its selected epoch (slices, predictions)
        self.keep_outputs = len(members) * max(n_val, 0) * _classes(first) <= _KEEP_OUTPUTS
        self.loss = MemberLoss(members)
        self.clip = [m.args["clip"] for m in members]

    def _generator(self, m: Member) -> torch.Generator:
        """Member m's own random stream (dropout masks): its state after ``prepare``."""
        if self.device.type == "cuda":
            return torch.Generator(device=self.device).manual_seed(m.args["seed"])
        gen = torch.Generator()
        gen.set_state(m.rng)
        return gen

    def fits(self, member: Member) -> bool:
        """Whether ``member`` can join this population now: the same bucket key (architecture family,
        optimizer family, batch size, data, loss, device, phase) and a model that fits the blocks as they
        are (:meth:`StackedModel.fits`: an architecture the padded population was built for; an MLP within
        its widths and depths)."""
        return bool(self.members) and member.key == self.key and self.model.fits(member.net)

    @torch.no_grad()
    def add(self, members: list[Member], trained_s: float = 0.0) -> None:
        """Members join after the others at an epoch boundary, each to train as it would alone (the
        inverse of :meth:`keep`): parameters, buffers, dropout rates and widths, optimizer state and
        hyperparameters, random streams, loss columns, clip, selected-epoch blocks and kept outputs all
        grow. ``trained_s``: the population's training seconds so far (a joiner's ``train_time_s``
        counts from there). Members that do not :meth:`fits` raise ConfigError."""
        refused = [m.job for m in members if not self.fits(m)]
        if refused:
            raise ConfigError(f"Jobs {refused} cannot join this population (another bucket key, or a model wider "
                              "or of another architecture than its blocks hold); train them in a population of "
                              "their own.")
        start = len(self.members)
        self.model.add([m.net for m in members])
        self.optim.extend(self.model.blocks, [m.args["optimizer"] for m in members], [m.opt for m in members],
                          self.model.placement[start:])
        self.generators += [self._generator(m) for m in members]
        self.loss.add(members)
        self.clip += [m.args["clip"] for m in members]
        for m in members:
            m.joined_s = trained_s
        self.members += members
        if self.best is not None:
            self.best = [torch.cat([b, block[start:].detach().clone()]) for b, block in zip(self.best, self.model.blocks)]
        first = self.members[0]
        if len(self.members) * max(first.val.n, 0) * _classes(first) > _KEEP_OUTPUTS:  # no longer kept: finish
            self.keep_outputs, self.outputs, self.best_outputs = False, None, None  # evaluates the selected model
        for name in ("outputs", "best_outputs"):
            kept = getattr(self, name)
            if kept is not None:
                setattr(self, name, torch.cat([kept, kept.new_zeros((len(members), *kept.shape[1:]))]))

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
        if self.optim.placement[src] != self.optim.placement[dst]:
            raise ConfigError(f"exploit copies a member over one of the same architecture; members {src} and {dst} "
                              "differ in shape (width or depth): exploit between members of equal shapes.")
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

def _classes(member: Member) -> int:
    """Outputs per example, measured on one example (for the memory check of kept outputs)."""
    with torch.no_grad():
        was = member.net.training
        member.net.eval()
        out = member.net(member.val.x[:1])
        member.net.train(was)
    return int(out[0].numel())
