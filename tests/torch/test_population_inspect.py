"""Members record what fit's Inspector records (weights, gradients, update ratios), at their own shapes."""

import numpy as np
import pytest

import tuneloop as tl
from tuneloop.torch import MLP, fit


def test_members_log_the_histograms_and_update_ratios_sequential_fit_logs(float64, tmp_path):
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(200, 8)), rng.integers(0, 3, 200)
    train, val = (x[:160], y[:160]), (x[160:], y[160:])
    space = tl.Space(width=tl.Choice([12, 15]), lr=tl.LogFloat(1e-3, 1e-2))  # one padded population

    def trial_fn(trial):
        return fit(lambda: MLP(8, 3, width=trial.params.width, dropout=0.1), train, val, trial=trial,
                   lr=trial.params.lr, epochs=2, batch_size=32, seed=trial.seed, inspect_every=3, clip=0.5).metrics

    storage = f"sqlite:///{tmp_path / 'inspect.db'}"
    logged = {}
    for executor in ("inline", {"name": "population", "exact": True}):
        study = tl.Study(f"inspect-{'inline' if executor == 'inline' else 'population'}", space, trial_fn,
                         metric="val_acc", mode="max", seed=4, storage=storage)
        study.run(2, searcher="random", executor=executor)
        store = tl.Store(storage)
        record = store.require_study(study.name)
        logged[study.name] = {
            t.number: ({(h.step, h.name): (h.n, h.stats["mean"]) for h in store.histograms(t.id)},
                       {k: v for k, v in store.series([t.id])[t.id].items() if k.startswith("update_ratio/")})
            for t in store.trials(record.id)}
    inline, population = logged["inspect-inline"], logged["inspect-population"]
    assert inline.keys() == population.keys() and len(inline) == 2
    for number, (hists, ratios) in inline.items():
        their_hists, their_ratios = population[number]
        weights = {name for _, name in hists if name.startswith(("weight/", "grad/"))}
        assert weights == {f"{kind}/{layer}.{p}" for kind in ("weight", "grad") for layer in (0, 3, 6)
                           for p in ("weight", "bias")}
        assert {(s, n) for s, n in hists if n in weights} == set(their_hists)  # steps 0, 3, 6, 9 of each member
        for key, (n, mean) in their_hists.items():
            assert n == hists[key][0]  # the member's own shape, not the padded block's
            assert mean == pytest.approx(hists[key][1], rel=1e-6, abs=1e-9)
        assert ratios.keys() == their_ratios.keys() and ratios
        for name, points in ratios.items():
            assert [s for s, _ in points] == [s for s, _ in their_ratios[name]]
            assert [v for _, v in their_ratios[name]] == pytest.approx([v for _, v in points], rel=1e-6)
