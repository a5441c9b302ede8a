"""Cost metrics of the reference trainer: measured without user code, on a stranger's model (a
plain ``nn.Sequential`` over random tensors), reported every epoch and usable as objectives."""

import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

import tuneloop as tl
from tuneloop.torch import fit, fit_population
from tuneloop.torch._cost import COST_METRICS, LATENCY_BATCH, latency_ms


@pytest.fixture(scope="module")
def noise():
    """Random inputs, a label from two of their features: 240 train, 300 validation examples
    (more than the latency batch, so the cut to LATENCY_BATCH examples is exercised)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(540, 12, generator=g)
    y = (x[:, 0] + x[:, 1] > 0).long()
    return (x[:240], y[:240]), (x[240:], y[240:])


def net(width: int = 32) -> nn.Module:
    return nn.Sequential(nn.Linear(12, width), nn.ReLU(), nn.Linear(width, 2))


def test_every_epoch_reports_the_cost_metrics_and_the_result_holds_the_whole_runs(noise):
    train, val = noise
    model = net()
    count = sum(p.numel() for p in model.parameters())
    result = fit(model, train, val, epochs=3, batch_size=60, inspect_every=0, predictions=False)
    history = result.history
    for h in history:
        assert set(COST_METRICS) <= set(h)
        assert h["params_m"] == count / 1e6
        assert math.isfinite(h["latency_ms"]) and h["latency_ms"] > 0
        assert h["epoch_time_s"] > 0
    assert len({h["latency_ms"] for h in history}) == 1  # measured once, repeated in every report
    times = [h["train_time_s"] for h in history]
    assert times == sorted(times) and len(set(times)) == 3  # cumulative, growing every epoch
    assert times[-1] == pytest.approx(sum(h["epoch_time_s"] for h in history))  # evaluation excluded
    assert {k: result.metrics[k] for k in COST_METRICS} == {k: history[-1][k] for k in COST_METRICS}
    assert result.metrics["val_acc"] == history[result.best_epoch - 1]["val_acc"]  # the rest: the selected epoch's
    off = fit(net(), train, val, epochs=1, inspect_every=0, predictions=False, cost_metrics=False)
    assert not set(COST_METRICS) & set(off.metrics) and not set(COST_METRICS) & set(off.history[0])


def test_latency_is_per_example_on_at_most_the_latency_batch():
    calls: list[int] = []

    class Counting(nn.Module):
        def forward(self, x):
            calls.append(len(x))
            assert not torch.is_grad_enabled() and not self.training  # inference: eval mode, no graph
            return x * 2

    model = Counting()
    value = latency_ms(model, torch.ones(LATENCY_BATCH + 44, 3))
    assert set(calls) == {LATENCY_BATCH} and len(calls) >= 8  # warm-up passes, then several timed ones
    assert math.isfinite(value) and value > 0 and model.training  # its mode is given back


def test_a_final_run_names_held_out_metrics_test_but_keeps_the_cost_names(noise):
    reports = []
    trial = SimpleNamespace(phase="final", heldout="test", splits_used=True, should_stop=lambda: False,
                            report=lambda step, **values: reports.append(values), log=lambda *a, **k: None)
    (x, _), (x_test, _) = noise
    fit(lambda: nn.Sequential(nn.Linear(12, 1)), (x, x[:, :1]), (x_test, x_test[:, :1]), trial=trial, loss="mse",
        epochs=2, inspect_every=0, predictions=False)
    assert [set(r) for r in reports] == [{"train_loss", "test_loss", *COST_METRICS}] * 2


def test_population_members_report_their_own_size_and_latency_and_the_buckets_time(noise):
    from tuneloop.torch import MLP

    train, val = noise
    jobs = [{"model": (lambda w=w: MLP(12, 2, width=w)), "train": train, "val": val, "epochs": 2, "batch_size": 60,
             "inspect_every": 0, "predictions": False, "seed": i} for i, w in enumerate((12, 15))]  # both padded to 16: one population
    small, large = fit_population(jobs)
    assert small.metrics["params_m"] == sum(p.numel() for p in MLP(12, 2, width=12).parameters()) / 1e6
    assert large.metrics["params_m"] == sum(p.numel() for p in MLP(12, 2, width=15).parameters()) / 1e6
    assert [h["train_time_s"] for h in small.history] == [h["train_time_s"] for h in large.history]
    assert all(r.metrics["latency_ms"] > 0 for r in (small, large))


def test_a_study_trades_accuracy_for_latency_with_fit_alone(noise, storage):
    train, val = noise

    def trial_fn(trial: tl.Trial) -> dict:
        return fit(lambda: net(trial.params.width), train, val, trial=trial, epochs=2, batch_size=60,
                   seed=trial.seed, inspect_every=0, predictions=False).metrics

    study = tl.Study("cost", tl.Space(width=tl.Choice([4, 64])), trial_fn, objectives={"val_acc": "max",
                     "latency_ms": "min"}, storage=storage)
    study.run(searcher="grid")
    assert len(study.trials) == 2
    for t in study.trials:
        assert t.state == "completed", t.error
        assert 0 <= t.values["val_acc"] <= 1 and t.values["latency_ms"] > 0
        curves = study.store(None).series([t.id])[t.id]
        assert [s for s, _ in curves["latency_ms"]] == [1, 2]  # in every report: schedulers can weigh it
    assert sorted(t.values["params_m"] for t in study.trials) == [(12 * w + w + w * 2 + 2) / 1e6 for w in (4, 64)]
