"""Finalize on a front (issue 19): a pick rule or function chooses the front members to retrain, an
infeasible configuration is never finalized, and the result reports every objective over seeds."""

import pytest
import trial_functions as tf
from typer.testing import CliRunner

import tuneloop as tl
from tuneloop.cli import app

SPACE = tl.Space(width=tl.Choice([1, 2, 3, 4]))
OBJECTIVES = {"val_acc": "max", "latency_ms": "min"}


def tuned(storage, name="mo", **kwargs):
    study = tl.Study(name, SPACE, tf.heldout_tradeoff, objectives=OBJECTIVES, storage=storage, **kwargs)
    study.run(searcher="grid")
    return study


def final_widths(storage, name):
    store = tl.Store(storage)
    return sorted(t.params["width"] for t in store.trials(store.require_study(name).id))


def test_a_pick_rule_retrains_exactly_the_members_it_keeps_best_first(storage):
    study = tuned(storage)
    assert len(study.front) == 4  # every width trades accuracy for latency
    result = study.finalize(top=2, seeds=2, pick="max val_acc where latency_ms <= 3")
    assert [c.params for c in result.configs] == [{"width": 3}, {"width": 2}]  # width 4 is too slow
    assert final_widths(storage, "mo-final") == [2, 2, 3, 3]
    assert result.pick == "max val_acc where latency_ms <= 3"
    # the final study carries every objective under its test name; each is reported over seeds
    assert result.objectives == ["test_acc", "latency_ms"] and result.directions == ["max", "min"]
    first = result.configs[0]
    assert set(first.objectives) == {"test_acc", "latency_ms"} and first.objectives["test_acc"].n == 2
    assert first.objectives["latency_ms"].mean == 3.0
    assert first.objectives["test_acc"].low <= first.objectives["test_acc"].mean <= first.objectives["test_acc"].high
    assert first.tuned_objectives["latency_ms"].mean == 3.0 and first.test.mean == first.objectives["test_acc"].mean
    record = tl.Store(storage).require_study("mo-final")
    assert record.objectives.names == ["test_acc", "latency_ms"]
    # the same rule again is a read; another rule is another look at test
    assert study.finalize(top=2, seeds=2, pick="max  val_acc where latency_ms<=3").configs[0].values == first.values
    with pytest.raises(tl.ConfigError, match=r"pick 'max val_acc where latency_ms <= 3'.*--again"):
        study.finalize(top=2, seeds=2, pick="min latency_ms")


def test_without_a_pick_the_front_by_the_first_objective_and_a_function_picks_too(storage):
    study = tuned(storage)
    assert [c.params["width"] for c in study.finalize(top=3, seeds=1).configs] == [4, 3, 2]
    chosen = study.finalize(top=3, seeds=1, again=True, pick=lambda front: min(front, key=lambda t: t.values["latency_ms"]))
    assert [c.params for c in chosen.configs] == [{"width": 1}] and chosen.pick.startswith("function ")
    with pytest.raises(tl.ConfigError, match="pick= takes a rule"):
        study.finalize(pick=3)


def test_a_constrained_study_never_finalizes_an_infeasible_configuration(storage):
    study = tl.Study("c", SPACE, tf.heldout_tradeoff, metric="val_acc", mode="max",
                     constraints={"latency_ms": ("<=", 2.0), "val_acc": (">=", 0.75)}, storage=storage)
    study.run(searcher="grid")
    result = study.finalize(top=3, seeds=2)
    assert [c.params["width"] for c in result.configs] == [2]  # 3 and 4 are too slow, 1 too inaccurate
    assert result.constraints == ["latency_ms <= 2", "test_acc >= 0.75"]
    assert result.configs[0].feasible == [False, False] and result.configs[0].kept is False  # 0.74 on test
    loose = tl.Study("loose", SPACE, tf.heldout_tradeoff, metric="val_acc", mode="max",
                     constraints={"latency_ms": ("<=", 0.5)}, storage=storage)
    loose.run(searcher="grid")
    with pytest.raises(tl.TuneloopError, match=r"never finalized.*latency_ms <= 0.5 \(4 runs\)"):
        loose.finalize(top=1, seeds=1)


def test_the_cli_picks_shows_every_objective_and_refuses_a_bad_rule_in_one_line(storage, write_experiment,
                                                                                 monkeypatch):
    monkeypatch.setenv("COLUMNS", "220")
    exp = write_experiment("""
        import tuneloop as tl
        import trial_functions as tf
        study = tl.Study("mo", tl.Space(width=tl.Choice([1, 2, 3, 4])), tf.heldout_tradeoff,
                         objectives={"val_acc": "max", "latency_ms": "min"}, constraints={"latency_ms": ("<=", 3.0)})
    """)
    runner = CliRunner()
    assert runner.invoke(app, ["run", str(exp), "--searcher", "grid", "--storage", storage]).exit_code == 0
    bad = runner.invoke(app, ["finalize", "mo", "--pick", "max val_acc if latency_ms < 2", "--file", str(exp),
                              "--storage", storage])
    assert bad.exit_code != 0 and len(bad.output.strip().splitlines()) == 1, bad.output
    assert "must start with 'max METRIC'" in bad.output and "tuneloop.db" not in bad.output
    unknown = runner.invoke(app, ["finalize", "mo", "--pick", "max val_ac", "--file", str(exp), "--storage", storage])
    assert unknown.exit_code != 0 and len(unknown.output.strip().splitlines()) == 1, unknown.output
    assert "val_ac" in unknown.output and tl.Store(storage).get_study("mo-final") is None
    done = runner.invoke(app, ["finalize", "mo", "--pick", "min latency_ms where val_acc >= 0.75", "--top", "1",
                               "--seeds", "2", "--file", str(exp), "--storage", storage])
    assert done.exit_code == 0, done.output
    assert final_widths(storage, "mo-final") == [2, 2]
    for text in ("test_acc (max)", "latency_ms (min)", "constraints on test", "kept 2/2", "95% CI",
                 "picked by 'min latency_ms where val_acc >= 0.75'", "± "):
        assert text in done.output, (text, done.output)


def test_ensembles_of_a_front_rank_by_the_first_objective_and_say_what_they_leave_out(storage):
    study = tl.Study("front", tl.Space(k=tl.Choice([0, 1, 2])), tf.member_with_latency,
                     objectives={"val_acc": "max", "latency_ms": "min"}, budget={"epochs": 6}, storage=storage)
    study.run(searcher="grid")
    assert len(study.front) == 3
    study.finalize(top=3, seeds=1)
    result = study.ensemble(["average"])
    assert result.members[0].startswith("#1 (front trials 0)")  # k=0: the best val_acc
    assert {r.method: r.score for r in result.rows}["average"] == pytest.approx(1.0)
    assert "several objectives (val_acc, latency_ms)" in result.warning and "3 times" in result.warning
