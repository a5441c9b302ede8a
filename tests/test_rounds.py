"""Rounds with roles: scientific values compared fairly, fixed values recorded, rounds chained."""

import collections

import pytest
import trial_functions as tf
from typer.testing import CliRunner

import tuneloop as tl
from tuneloop.cli import app
from tuneloop.rounds import assign_roles, chain

SPACE = tl.Space(act=tl.Choice(["relu", "gelu", "tanh"]), lr=tl.LogFloat(1e-4, 1.0))


def round_one(storage, **kwargs):
    return tl.Study("act", SPACE, tf.activation_bowl, metric="val_acc", mode="max", storage=storage,
                    scientific=["act"], fixed={"width": 128}, **kwargs)


def test_scientific_values_get_equal_shares_and_fixed_values_reach_every_trial(storage):
    study = round_one(storage)
    assert study.defaults["searcher"] == "sobol"  # an exploration round explores evenly
    study.run(n_trials=9, seed=0)
    trials = study.trials
    assert collections.Counter(t.params["act"] for t in trials) == {"relu": 3, "gelu": 3, "tanh": 3}
    assert all(t.params["width"] == 128 and t.values["n_params"] == 3 for t in trials)
    record = tl.Store(storage).require_study("act")
    assert record.config["roles"] == {"scientific": ["act"], "nuisance": ["lr"], "fixed": {"width": 128}}
    assert (record.config["goal"], record.config["round"], record.config["parent"]) == ("act", 1, None)
    study.run(n_trials=15)  # resumed: the shares stay equal
    assert collections.Counter(t.params["act"] for t in study.trials) == {"relu": 5, "gelu": 5, "tanh": 5}


def test_a_study_without_scientific_parameters_optimizes_with_tpe(storage):
    study = tl.Study("plain", SPACE, tf.activation_bowl, metric="val_acc", mode="max", storage=storage)
    assert study.defaults["searcher"] == "tpe" and study.roles.scientific == ()


def test_changing_roles_under_the_same_name_is_refused(storage):
    round_one(storage).run(n_trials=3, seed=0)
    other = tl.Study("act", SPACE, tf.activation_bowl, metric="val_acc", mode="max", storage=storage,
                     scientific=[], fixed={"width": 128})
    with pytest.raises(tl.ConfigError, match="other parameter roles.*'act-r2'"):
        other.run(n_trials=3)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"fixed": {"lr": 0.1}}, "'lr' is both in the space and fixed"),
    ({"scientific": ["lr"], "nuisance": ["lr", "act"]}, r"\['lr'\] are both scientific and nuisance"),
    ({"scientific": ["act"], "nuisance": []}, r"\['lr'\] have no role.*fixed=\{'lr': value\}"),
    ({"nuisance": ["lr", "act", "depth"]}, r"\['depth'\] are not top-level"),
    ({"scientific": ["depth"]}, "'depth' is not a top-level parameter"),
    ({"fixed": {"model": object()}}, "must be a str, int, float, bool or None"),
    ({"scientific": "act"}, "take lists of parameter names"),
])
def test_bad_roles_are_explained(kwargs, message):
    with pytest.raises(tl.ConfigError, match=message):
        assign_roles(SPACE, **kwargs)


def test_next_round_links_to_the_last_and_keeps_the_trial_function(storage):
    first = round_one(storage)
    first.run(n_trials=6, seed=0)
    second = first.next_round(tl.Space(act=tl.Choice(["relu", "gelu"]), lr=tl.LogFloat(1e-3, 0.1)), searcher="tpe")
    assert (second.name, second.goal, second.round, second.parent) == ("act-r2", "act", 2, "act")
    assert second.fn is first.fn and second.roles.fixed == {"width": 128} and second.roles.scientific == ("act",)
    second.run(n_trials=4, seed=0)
    third = second.next_round(scientific=[], fixed={"width": 128, "act": "gelu"},
                              space=tl.Space(lr=tl.LogFloat(1e-3, 0.1)))
    assert third.defaults["searcher"] == "tpe"  # nothing left to compare: this round optimizes
    third.run(n_trials=3, seed=0)
    assert all(t.params["act"] == "gelu" for t in third.trials)
    rounds = chain(tl.Store(storage), "act-r3")
    assert [(r.round, r.study, r.parent) for r in rounds] == [(1, "act", None), (2, "act-r2", "act"), (3, "act-r3", "act-r2")]


def test_rounds_command_shows_the_chain_and_the_finalized_result(storage, monkeypatch):
    first = round_one(storage)
    first.run(n_trials=6, seed=0)
    second = first.next_round(searcher="random")
    second.run(n_trials=3, seed=0)
    final = second.finalize(top=1, seeds=2)
    monkeypatch.setenv("COLUMNS", "200")
    result = CliRunner().invoke(app, ["rounds", "act-r2", "--storage", storage])
    assert result.exit_code == 0, result.output
    lines = [ln for ln in result.output.splitlines() if "│" in ln]
    assert "act-r2" in lines[1] and "act-r2" not in lines[0] and "width=128" in lines[0]
    assert f"{final.configs[0].test.mean:.4f} ±" in lines[1] and "(act-r2-final)" in lines[1]
    assert lines[0].rstrip(" │").endswith("-")  # round 1 was not finalized
    missing = CliRunner().invoke(app, ["rounds", "nope", "--storage", storage])
    assert missing.exit_code == 1 and "No study or goal named 'nope'" in missing.output


def test_a_scheduler_compares_trials_only_within_their_scientific_value(storage):
    study = tl.Study("fam", tl.Space(family=tl.Choice(["strong", "weak"]), x=tl.Float(0.0, 1.0)), tf.family_curve,
                     metric="score", mode="max", storage=storage, scientific=["family"],
                     scheduler={"name": "asha", "min_resource": 1, "reduction_factor": 3})
    study.run(n_trials=20, seed=0)
    states = collections.defaultdict(collections.Counter)
    for t in study.trials:
        states[t.params["family"]][t.state] += 1
    # each family prunes its own weaker trials, but the weak family is not wiped out by the strong one
    for family in ("strong", "weak"):
        assert states[family]["completed"] >= 1 and states[family]["pruned"] >= 1, dict(states)
