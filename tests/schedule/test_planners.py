"""Synchronous successive halving and PBT: generations, checkpoints, lineage, restarts."""

import collections

import pytest
import trial_functions as tf

import tuneloop as tl

SPACE = tl.Space(lr=tl.LogFloat(0.01, 1.0))


def study(storage, scheduler, epochs=9, name="plan"):
    return tl.Study(name, SPACE, tf.stepper, metric="score", mode="max", budget={"epochs": epochs},
                    storage=storage, searcher="random", scheduler=scheduler)


def lineage(storage, name="plan"):
    store = tl.Store(storage)
    record = store.require_study(name)
    lin = store.lineage(record.id)
    return {t.number: (t, lin[t.id]) for t in store.trials(record.id)}


def test_successive_halving_promotes_the_best_third_from_their_checkpoints(storage):
    summary = study(storage, {"name": "sha", "reduction_factor": 3}).run(seed=0)
    assert summary.reason == "exhausted" and summary.finished_total == 9 + 3 + 1
    rows = lineage(storage)
    by_gen = collections.defaultdict(list)
    for t, lin in rows.values():
        by_gen[lin["generation"]].append((t, lin))
    assert [len(by_gen[g]) for g in range(3)] == [9, 3, 1]
    rung0 = sorted((t for t, _ in by_gen[0]), key=lambda t: t.value, reverse=True)
    assert {t.params["lr"] for t, _ in by_gen[1]} == {t.params["lr"] for t in rung0[:3]}  # the best third
    for generation, epochs, start in ((1, 3, 1), (2, 9, 3)):
        for t, lin in by_gen[generation]:
            parent, _ = rows[lin["parent"]]
            assert lin["event"] == "promote" and parent.params == t.params
            assert t.values["start"] == start  # it continued from the parent's last epoch...
            assert t.values["w"] == pytest.approx(parent.values["w"] + t.params["lr"] * (epochs - start))  # ...and state
            assert lin["info"]["budget"] == {"epochs": epochs, "schedule_epochs": 9}


@pytest.mark.parametrize("prune_on", ["w", None])
def test_successive_halving_promotes_by_what_the_study_judges(storage, prune_on):
    """With several objectives a planner ranks each rung by the judged metric (prune_on), not by the
    first objective: judging w (min), the three smallest steps go on; judging score (max), the largest."""
    tl.Study("mo", SPACE, tf.stepper, objectives={"score": "max", "w": "min"}, prune_on=prune_on,
             budget={"epochs": 9}, storage=storage, searcher="random",
             scheduler={"name": "sha", "reduction_factor": 3}).run(seed=0)
    rows = lineage(storage, "mo")
    rung0 = sorted(t.params["lr"] for t, lin in rows.values() if lin["generation"] == 0)
    promoted = {t.params["lr"] for t, lin in rows.values() if lin["generation"] == 1}
    assert promoted == set(rung0[:3] if prune_on == "w" else rung0[-3:])


def test_pbt_exploits_better_checkpoints_and_perturbs_within_bounds(storage):
    summary = study(storage, {"name": "pbt", "population": 4, "interval": 3}, epochs=12).run(seed=0)
    assert summary.finished_total == 4 * 4
    rows = lineage(storage)
    exploits = [(t, lin) for t, lin in rows.values() if lin["event"] == "exploit"]
    assert len(exploits) == 3  # the bottom quarter (one member) in each of generations 1-3
    for t, lin in rows.values():
        assert SPACE["lr"].contains(t.params["lr"])
        if lin["generation"] == 0:
            assert lin["parent"] is None and t.values["start"] == 0
            continue
        parent, parent_lin = rows[lin["parent"]]
        assert parent_lin["generation"] == lin["generation"] - 1 and t.values["start"] == 3 * lin["generation"]
        if lin["event"] == "continue":
            assert parent_lin["member"] == lin["member"] and parent.params == t.params
        else:  # exploit: another member's checkpoint, the hyperparameters perturbed
            assert parent_lin["member"] != lin["member"]
            gen = [p for p, pl in rows.values() if pl["generation"] == lin["generation"] - 1]
            assert parent.value == max(p.value for p in gen)  # a top member (the top quarter is one here)
            assert t.params["lr"] != parent.params["lr"]
        assert t.values["w"] == pytest.approx(parent.values["w"] + t.params["lr"] * 3, abs=1e-9) or t.values["w"] > 9


def test_a_restart_mid_generation_replans_the_same_generation(storage):
    first = study(storage, {"name": "pbt", "population": 4, "interval": 3}, epochs=9)
    first.run(n_trials=6, seed=0)  # stops in generation 1: 4 done in gen 0, 2 of gen 1
    store = tl.Store(storage)
    record = store.require_study("plan")
    store.mark_interrupted(record.id, [store.trials(record.id)[-1].id])  # as a killed driver leaves one
    again = study(storage, {"name": "pbt", "population": 4, "interval": 3}, epochs=9)
    again.run(seed=0)
    rows = lineage(storage)
    assert len(rows) == 12 and all(t.state == "completed" for t, _ in rows.values())
    members = collections.Counter((lin["member"], lin["generation"]) for _, lin in rows.values())
    assert set(members.values()) == {1} and len(members) == 12  # nothing duplicated, nothing lost


@pytest.mark.slow  # worker processes (2 s): .ci/run runs it in its second pytest call
def test_planners_work_with_worker_processes(storage):
    summary = study(storage, {"name": "sha", "reduction_factor": 2, "n": 4}, epochs=4).run(workers=2, seed=0)
    assert summary.finished_total == 4 + 2 + 1
    promoted = [(t, lin) for t, lin in lineage(storage).values() if lin["generation"] > 0]
    assert all(t.values["start"] > 0 for t, _ in promoted)  # checkpoints crossed processes through the store


def test_planner_misuse_is_explained(storage):
    no_epochs = tl.Study("x", SPACE, tf.stepper, metric="score", mode="max", storage=storage, scheduler="sha")
    with pytest.raises(tl.ConfigError, match="budget in epochs"):
        no_epochs.run()
    scientific = tl.Study("y", tl.Space(a=tl.Choice([1, 2]), lr=tl.LogFloat(0.01, 1.0)), tf.stepper, metric="score",
                          mode="max", budget={"epochs": 3}, storage=storage, scheduler="pbt", scientific=["a"])
    with pytest.raises(tl.ConfigError, match="cannot be combined with scientific parameters"):
        scientific.run()
    with pytest.raises(tl.ConfigError, match="2 or more members"):
        study(storage, {"name": "pbt", "population": 1}).run()


def test_lineage_is_shown_by_the_cli_and_the_api(storage, monkeypatch):
    from fastapi.testclient import TestClient
    from typer.testing import CliRunner

    from tuneloop.cli import app
    from tuneloop.dashboard import create_app

    study(storage, {"name": "sha", "reduction_factor": 3, "n": 3}, epochs=3).run(seed=0)
    child = next(t for t, lin in lineage(storage).values() if lin["generation"] == 1)
    parent = lineage(storage)[child.number][1]["parent"]
    monkeypatch.setenv("COLUMNS", "200")
    shown = CliRunner().invoke(app, ["show", "plan", str(child.number), "--storage", storage])
    member = lineage(storage)[child.number][1]["member"]
    assert shown.exit_code == 0 and f"member {member}, generation 1: promote from trial {parent}" in shown.output
    client = TestClient(create_app(storage), base_url="http://localhost")  # a Host the dashboard answers
    data = client.get(f"/api/studies/plan/trials/{child.number}").json()
    assert data["trial"]["lineage"]["parent"] == parent and data["trial"]["lineage"]["event"] == "promote"
