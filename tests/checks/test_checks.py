"""Deliberately broken models, each caught by the right check; correct models pass every check."""

import pytest
import torch
from torch import nn

import tuneloop as tl
from tuneloop.datasets import mnist1d
from tuneloop.torch import CNN, GRU, MLP


class MixesTheBatch(nn.Module):
    """Transposes before flattening: each output row blends features of several samples."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(40, 10)

    def forward(self, x):
        return self.fc(x.t().reshape(len(x), -1))


class DetachedLayer(nn.Module):
    """The hidden layer's output is detached: no gradient reaches fc1."""

    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(40, 64), nn.Linear(64, 10)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)).detach())


class HugeOutput(MLP):
    """An output layer initialized 100x too large."""

    def __init__(self):
        super().__init__(40, 10, width=64)
        with torch.no_grad():
            self[-1].weight.mul_(100)


class IgnoresInput(nn.Module):
    """Learns the class prior and nothing else."""

    def __init__(self):
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(10))

    def forward(self, x):
        return self.logits.expand(len(x), -1)


class RaisesInForward(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(41, 10)  # the data has 40 features

    def forward(self, x):
        return self.fc(x)


def run(model, **kwargs):
    return tl.Checks(model, data=mnist1d(), baselines=False, **kwargs).run()


@pytest.mark.parametrize("model, fit, check, words", [
    (MixesTheBatch, {}, "batch independence (model)", "depends on samples"),
    (DetachedLayer, {}, "gradient reaches every parameter (model)", "no gradient reaches 2 parameters"),
    (HugeOutput, {}, "loss at initialization", "expected about ln 10"),
    (IgnoresInput, {}, "input-independent baseline", "does not depend on its input"),
    (lambda: MLP(40, 10, width=64), {"lr": 1e-7}, "overfit a tiny batch", "loss flat"),
    (RaisesInForward, {}, "output shape (model)", "the model raised RuntimeError"),
], ids=["mixes-batch", "detached", "huge-output", "ignores-input", "lr-too-low", "raises"])
@pytest.mark.slow  # 2-5 s in the default run: .ci/run runs it in its second pytest call
def test_each_broken_model_is_caught_by_the_right_check(model, fit, check, words):
    report = run(model, fit=fit)
    failure = report.failure
    assert failure is not None and failure.name == check, [(r.name, r.status, r.message) for r in report.results]
    assert words in failure.message
    assert failure.causes and failure.next_step  # every failure says why it may be and what to do
    assert report.results[-1] is failure  # the ladder stopped there


def test_a_forward_that_raises_keeps_its_traceback_as_evidence():
    failure = run(RaisesInForward).failure
    assert "Traceback" in failure.evidence["traceback"] and "mat1 and mat2" in failure.evidence["traceback"]


@pytest.mark.parametrize("build, fit", [
    (lambda: MLP(40, 10, width=128), {"lr": 3e-3}),
    (lambda: CNN(40, 10), {"lr": 3e-3}),
    (lambda: GRU(40, 10, hidden=64), {"lr": 1e-2}),
], ids=["mlp", "cnn", "gru"])
@pytest.mark.slow  # long end to end: .ci/run runs it in its second pytest call
def test_correct_models_pass_every_check(build, fit):
    report = run(build, fit=fit, modules=[], stages=[tl.Stage("10% of the data", fraction=0.1, fit={"epochs": 2})])
    assert report.passed, [(r.name, r.message) for r in report.results if r.status == "fail"]
    names = [r.name for r in report.results]
    assert names[-1] == "stage: 10% of the data" and "overfit a tiny batch" in names


def test_named_modules_are_checked_on_their_own_input():
    report = run(lambda: MLP(40, 10, width=32), modules=["2"], stages=[])
    assert "batch independence (2)" in [r.name for r in report.results]
    with pytest.raises(tl.ConfigError, match="The model has no submodule 'fc9'"):
        run(lambda: MLP(40, 10), modules=["fc9"])


def test_stages_stop_at_the_first_that_fails_its_criterion():
    stages = [tl.Stage("tiny", fraction=0.05, fit={"epochs": 1}), tl.Stage("impossible", at_least=0.99),
              tl.Stage("never run")]
    report = run(lambda: MLP(40, 10, width=64), stages=stages)
    assert [r.name for r in report.results][-2:] == ["stage: tiny", "stage: impossible"]
    assert "below 0.99" in report.failure.message


def test_gradcheck_catches_a_wrong_backward():
    class WrongSquare(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * x

        @staticmethod
        def backward(ctx, grad):
            (x,) = ctx.saved_tensors
            return grad * x  # should be 2x

    from tuneloop.checks._layers import gradchecks

    result = gradchecks([(WrongSquare.apply, [torch.randn(3)])])
    assert result.status == "fail" and "disagree" in result.message
    assert gradchecks([(torch.sin, [torch.randn(3)])]).status == "pass"


@pytest.mark.slow  # long end to end: .ci/run runs it in its second pytest call
def test_baselines_reproduce_the_papers_logistic_regression(storage):
    study = tl.Study("m1d", tl.Space(x=tl.Float(0, 1)), print, metric="val_acc", mode="max", storage=storage)
    report = tl.Checks(lambda: MLP(40, 10), data=mnist1d(), study=study, stages=[]).run()
    assert abs(report.baselines["logistic regression"] - 0.32) <= 0.03  # the MNIST-1D paper: 32%
    assert report.baselines["majority class"] < 0.15
    stored = study.store(None).latest_checks(study.store(None).get_study("m1d").id)
    assert stored["baselines"] == report.baselines and len(stored["checks"]) == len(report.results)
