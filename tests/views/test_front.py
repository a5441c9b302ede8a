"""Several objectives and constraints in the views: the front, each trial's feasibility, the
hypervolume over finished trials, and rankings that never put an infeasible trial first."""

from __future__ import annotations

import json
import sqlite3

import pytest
import trial_functions as tf
from fronts import FRONT, FRONT3, INFEASIBLE, build_fronts

import tuneloop as tl
from tuneloop.errors import StorageError
from tuneloop.store import Store
from tuneloop.views import round_rows, studies_view, study_view, trial_view, trials_of


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    storage = build_fronts(f"sqlite:///{tmp_path_factory.mktemp('fronts') / 'fronts.db'}")
    with Store(storage) as store:
        yield store


def area(points, reference):
    """Oracle: the area two minimized objectives dominate up to ``reference``, by slicing a staircase."""
    steps = sorted(p for p in points if p[0] < reference[0] and p[1] < reference[1])
    total, ceiling = 0.0, reference[1]
    for i, (x, y) in enumerate(steps):
        right = steps[i + 1][0] if i + 1 < len(steps) else reference[0]
        ceiling = min(ceiling, y)
        total += (right - x) * (reference[1] - ceiling)
    return total


def test_two_objectives_with_a_constraint_give_the_front_feasibility_and_a_feasible_best(store):
    view = study_view(store, "mo")
    assert view["objectives"] == [{"name": "val_acc", "direction": "max"}, {"name": "latency_ms", "direction": "min"}]
    assert view["constraints"] == [{"metric": "latency_ms", "op": "<=", "bound": 3.0}]
    assert view["judge"] == "val_acc (max)"
    assert view["front"] == FRONT  # best first by val_acc
    rows = {t["number"]: t for t in view["trials"]}
    assert sorted(n for n, t in rows.items() if t["feasible"] is False) == INFEASIBLE
    assert rows[8]["broken"] == ["latency_ms <= 3"] and rows[6]["broken"] == []
    # trial 8 is the most accurate of all, but breaks latency_ms <= 3: the best is 6, everywhere
    assert max(rows, key=lambda n: rows[n]["values"]["val_acc"]) == 8
    assert view["study"]["best"] == 6
    assert view["curves"][0]["number"] == 6 and [c["number"] for c in view["curves"]][-3:] == INFEASIBLE
    assert view["history"]["best"][-1] == rows[6]["value"]  # the best so far counts feasible trials only
    assert {s["name"]: s["best"] for s in studies_view(store)["studies"]}["mo"] == rows[6]["value"]
    assert round_rows(store, "mo")[0].best == rows[6]["value"]


def test_hypervolume_grows_with_each_front_point_up_to_the_oracle_area(store):
    view = study_view(store, "mo")
    hv = view["hypervolume"]
    record = store.require_study("mo")
    trials = store.trials(record.id)
    assert hv["reference"] == record.objectives.reference(trials)
    assert hv["order"] == "finished" and [p[0] for p in hv["points"]] == list(range(1, 11))
    values = [p[1] for p in hv["points"]]
    assert values == sorted(values) and values[0] > 0
    rows = {t["number"]: t["values"] for t in view["trials"]}
    losses = [(-rows[n]["val_acc"], rows[n]["latency_ms"]) for n in FRONT]
    expected = area(losses, (-hv["reference"][0], hv["reference"][1]))
    assert values[-1] == pytest.approx(expected, rel=1e-9)
    # it rises exactly at the trials that joined the front (the grid finishes in number order)
    risen = [hv["numbers"][i] for i in range(10) if i == 0 or values[i] > values[i - 1]]
    assert risen == sorted(FRONT)


def test_three_objectives_give_a_three_dimensional_front_and_reference(store):
    view = study_view(store, "mo3")
    assert [o["name"] for o in view["objectives"]] == ["val_acc", "latency_ms", "params_m"]
    assert view["front"] == FRONT3 and view["constraints"] == []
    assert len(view["hypervolume"]["reference"]) == 3 and view["hypervolume"]["points"][-1][1] > 0
    assert all(t["feasible"] is True for t in view["trials"])


def test_ranking_by_value_puts_the_front_first_and_infeasible_trials_last(store):
    _, rows = trials_of(store, "mo", sort="value")
    numbers = [t.number for t in rows]
    assert numbers[:4] == FRONT and numbers[-3:] == INFEASIBLE  # infeasible: by how far they break it
    assert sorted(numbers) == list(range(10))


def test_trial_view_shows_every_objective_and_the_constraint_it_breaks(store):
    broken = trial_view(store, "mo", 8)
    assert [(o["name"], o["direction"]) for o in broken["objectives"]] == [("val_acc", "max"), ("latency_ms", "min")]
    assert broken["objectives"][1]["value"] == pytest.approx(4.24)
    assert broken["feasible"] is False and broken["broken"] == ["latency_ms <= 3"]
    assert broken["constraints"] == [{"metric": "latency_ms", "op": "<=", "bound": 3.0,
                                      "value": pytest.approx(4.24), "kept": False}]
    assert broken["on_front"] is False
    kept = trial_view(store, "mo", 6)
    assert kept["feasible"] is True and kept["on_front"] is True and kept["constraints"][0]["kept"] is True


def test_a_single_objective_study_keeps_its_view(storage):
    tl.Study("plain", tl.Space(x=tl.Choice([0.2, 0.5, 0.9])), tf.quadratic, metric="loss", mode="min",
             storage=storage, searcher="grid").run(seed=0)
    with Store(storage) as store:
        view = study_view(store, "plain")
        assert view["objectives"] == [{"name": "loss", "direction": "min"}] and view["constraints"] == []
        assert view["front"] == [] and view["hypervolume"] is None
        assert view["study"]["best"] == 1 and all(t["broken"] == [] for t in view["trials"])
        assert trial_view(store, "plain", 0)["on_front"] is None


def test_malformed_stored_objectives_are_a_storage_error_naming_the_study(store, tmp_path):
    copy = tmp_path / "forged.db"
    with sqlite3.connect(store.url.removeprefix("sqlite:///")) as a, sqlite3.connect(copy) as b:
        a.backup(b)
        b.execute("UPDATE studies SET config = ? WHERE name = 'mo'",
                  (json.dumps({"objectives": [["val_acc", "upwards"]], "constraints": "<script>"}),))
    with Store(f"sqlite:///{copy}", read_only=True) as forged:
        with pytest.raises(StorageError, match=r"study 'mo'.*malformed"):
            study_view(forged, "mo")
        listed = {s["name"]: s for s in studies_view(forged)["studies"]}  # the list still shows it
        assert listed["mo"]["objectives"] == [{"name": "val_acc", "direction": "max"}]
        assert listed["mo3"]["objectives"][2] == {"name": "params_m", "direction": "min"}


def test_a_long_study_draws_at_most_a_hundred_hypervolumes_equal_to_the_full_history():
    import random
    from types import SimpleNamespace

    from tuneloop.objectives import Objectives, hypervolume_history
    from tuneloop.views._front import MAX_POINTS, hypervolume_view

    rng = random.Random(0)
    objectives = Objectives.of(objectives={"acc": "max", "ms": "min", "mb": "min"}, constraints={"ms": ("<=", 0.9)})
    trials = [SimpleNamespace(number=n, state="completed" if n % 7 else "pruned", finished_at=float(n),
                              values={"acc": rng.random(), "ms": rng.random(), "mb": rng.random()}) for n in range(150)]
    view = hypervolume_view(objectives, trials, ("test", "long"))
    full = hypervolume_history(objectives, trials, view["reference"])  # the oracle: one after every trial
    assert len(view["points"]) == MAX_POINTS and view["points"][-1][0] == 150
    assert [v for _, v in view["points"]] == pytest.approx([full[k - 1] for k, _ in view["points"]], rel=1e-12)
    assert view["numbers"] == [k - 1 for k, _ in view["points"]]  # finished in number order here
