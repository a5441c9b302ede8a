"""``tl.Checks``: the minimally-sufficient-testing ladder of an experiment, fastest check first.

    checks = tl.Checks(lambda: MLP(40, 10), data=mnist1d(), fit={"lr": 3e-3, "batch_size": 128},
                       modules=["0"], stages=[tl.Stage("10% of the data", fraction=0.1, at_least=0.3),
                                              tl.Stage("all data", beats_previous=True)], study=study)
    report = checks.run()          # or: tuneloop check exp.py

Order: layer checks (whole model, then each named module), loss at initialization, the
input-independent baseline, overfitting a tiny batch, then the declared stages. The ladder stops
at the first failure; the scikit-learn baselines always run. With a study, results are stored
with it and shown by the dashboard and the report.

The model builder takes no argument, or one: the configuration being checked (a dict). An idea's
variant (``tuneloop idea test``) is checked with the baseline's ladder where ``model`` gets the
variant's whole configuration and the overrides that are ``fit`` arguments go into ``fit``
(:meth:`Checks.for_config`)::

    checks = tl.Checks(lambda p: MLP(40, 10, width=p.get("width", 64)), data=mnist1d())
"""

from __future__ import annotations

import copy
import inspect
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from tuneloop._validation import check_one_of
from tuneloop.checks import _layers, _training
from tuneloop.checks._baselines import baselines as fit_baselines
from tuneloop.checks._result import CheckReport, CheckResult
from tuneloop.checks._training import Stage
from tuneloop.errors import ConfigError


class Checks:
    """What the checks need: a model builder, data, the loss, and how the model is trained.

    ``model`` builds the model with no argument (``lambda: MLP(40, 10)``) or from one argument, the
    configuration checked (``lambda p: MLP(40, 10, width=p.get("width", 64))``): ``{}`` unless the
    ladder was made with :meth:`for_config`."""

    def __init__(
        self,
        model: Callable[..., nn.Module],
        data: Any = None,
        *,
        train: tuple[Any, Any] | None = None,
        val: tuple[Any, Any] | None = None,
        loss: str = "cross_entropy",
        fit: dict[str, Any] | None = None,
        modules: Sequence[str] = (),
        functions: Sequence[tuple[Callable[..., Any], Sequence[Any]]] = (),
        stages: Sequence[Stage] = (),
        baselines: bool = True,
        seed: int = 0,
        study: Any = None,
    ) -> None:
        if isinstance(model, nn.Module) or not callable(model):
            raise ConfigError("The 'model' argument of Checks must be a function that builds the model "
                              "(e.g. lambda: MLP(40, 10)), so that checks can rebuild it with a seed.")
        check_one_of(loss, ["cross_entropy", "mse"], "loss", "Checks")
        if data is not None:
            train, val = data.train, data.val
        if train is None or val is None:
            raise ConfigError("Checks need data: data=splits (with .train and .val), or train=(x, y) and val=(x, y).")
        self.model, self.train, self.val, self.loss = model, train, val, loss
        self.config: dict[str, Any] = {}  # what a one-argument model builder is given
        self._takes_config = _takes_one_argument(model)
        self.fit = {"loss": loss, **(fit or {})}
        self.modules, self.functions, self.stages = list(modules), list(functions), list(stages)
        self.with_baselines, self.seed, self.study = baselines, seed, study
        self.classify = loss == "cross_entropy"

    def build(self) -> nn.Module:
        """A fresh model from the builder (given :attr:`config` when it takes an argument)."""
        return self.model(dict(self.config)) if self._takes_config else self.model()

    def for_config(self, config: Mapping[str, Any], overrides: Mapping[str, Any] | None = None) -> Checks:
        """This ladder for another configuration (an idea's variant): a one-argument model builder gets
        ``config``; the ``overrides`` that are arguments of :func:`tuneloop.torch.fit` (lr, weight_decay,
        optimizer, schedule, batch_size, ...) replace those of ``fit``. The copy has no study (its results
        are not stored as the study's own checks) and fits no baselines (they judge the data, not a variant)."""
        from tuneloop.torch import fit

        names = {n for n, p in inspect.signature(fit).parameters.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}
        names -= {"trial", "seed", "device", "log_every", "inspect_every", "slices", "predictions", "cost_metrics"}
        other = copy.copy(self)
        other.config = dict(config)
        other.fit = {**self.fit, **{k: v for k, v in (overrides or {}).items() if k in names}}
        other.study, other.with_baselines = None, False
        return other

    def run(self, *, storage: str | None = None, on_result: Callable[[CheckResult], None] | None = None) -> CheckReport:
        """Run the ladder (stopping at the first failure) and the baselines; store them with the study."""
        report = CheckReport(metric=self.metric)
        for step in self._ladder():
            results = _timed(step)
            for r in results:
                report.results.append(r)
                if on_result is not None:
                    on_result(r)
            if any(not r.passed for r in results):
                break
        if self.with_baselines:
            report.baselines = {k: v["score"] for k, v in fit_baselines(self.train, self.val, self.classify,
                                                                        self.seed).items()}
        self._store(report.results, report.baselines, storage)
        return report

    @property
    def metric(self) -> str:
        """What the baselines are scored by: validation accuracy, or MSE for regression."""
        return "val_acc" if self.classify else "val_mse"

    def run_baselines(self, *, storage: str | None = None) -> dict[str, float]:
        """Only the baselines (``tuneloop baseline``), stored with the study like ``run`` does."""
        scores = {k: v["score"] for k, v in fit_baselines(self.train, self.val, self.classify, self.seed).items()}
        self._store([], scores, storage)
        return scores

    def _ladder(self) -> list[Callable[[], list[CheckResult]]]:
        x = torch.as_tensor(np.asarray(self.train[0][:32]), dtype=torch.float32)
        y = torch.as_tensor(np.asarray(self.train[1][:32]))
        n_out = int(np.max(np.asarray(self.train[1]))) + 1 if self.classify else None

        def fresh() -> nn.Module:
            torch.manual_seed(self.seed)
            return self.build()

        def layers() -> list[CheckResult]:
            """Whole model, then each named module; like the ladder, it stops at the first failure."""
            net = fresh()
            out: list[CheckResult] = []
            targets = [("model", net, x, n_out)]
            if self.modules:
                inputs = _layers.module_inputs(net, x, self.modules)
                targets += [(name, dict(net.named_modules())[name], inputs[name], None) for name in self.modules]
            for where, module, inp, n in targets:
                out += _layers.output_checks(module, inp, n, where=where)
                for layer_check in (_layers.gradient_flow, _layers.batch_independence):
                    if any(not r.passed for r in out):
                        return out
                    out.append(layer_check(module, inp, where))
                if any(not r.passed for r in out):
                    return out
            for check in (lambda: [_layers.determinism(self.build, x, self.seed)],
                          lambda: [_layers.gradchecks(self.functions)]):
                out += check()
                if any(not r.passed for r in out):
                    return out
            return out

        return [
            layers,
            lambda: [_training.init_loss(fresh(), x, y, self.classify)],
            lambda: [_training.input_dependence(fresh, self.train, self.val, self.fit, self.classify, self.seed)],
            lambda: [_training.overfit_batch(fresh, self.train, self.fit, self.classify, self.seed)],
            lambda: _training.stage_ladder(self.stages, fresh, self.train, self.val, self.fit, self.classify, self.seed),
        ]

    def _store(self, results: list[CheckResult], baselines: dict[str, float], storage: str | None) -> None:
        if self.study is None:
            return  # printed only: there is no study to keep them with
        store = self.study.store(storage)
        record = self.study.record(store)
        store.add_checks(record.id, [r.to_dict() for r in results], baselines, self.metric)


def _takes_one_argument(fn: Callable[..., Any]) -> bool:
    """Whether ``fn`` is called with one positional argument (the configuration), not none."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):  # a builtin or class without a readable signature: called with none
        return False
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len([p for p in positional if p.default is p.empty]) == 1


def _timed(step: Callable[[], list[CheckResult]]) -> list[CheckResult]:
    start = time.perf_counter()
    results = step()
    share = (time.perf_counter() - start) / max(len(results), 1)
    for r in results:
        r.seconds = share
    return results


def check(model: Callable[[], nn.Module], data: Any = None, **kwargs: Any) -> CheckReport:
    """Build :class:`Checks` from the arguments and run them (``storage=`` goes to ``run``)."""
    storage = kwargs.pop("storage", None)
    return Checks(model, data, **kwargs).run(storage=storage)
