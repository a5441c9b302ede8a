"""Finalize: the top configurations retrained over seeds, tested once, resumable, never twice."""

import pytest
import trial_functions as tf

import tuneloop as tl
from tuneloop.finalize import AlreadyFinalizedError, read_final

SPACE = tl.Space(k=tl.Choice([0, 1, 2]))


def tuned(storage, name="members"):
    study = tl.Study(name, SPACE, tf.ensemble_member, metric="val_acc", mode="max", budget={"epochs": 6},
                     storage=storage)
    study.run(searcher="grid")
    return study


def logged(study_name, storage):
    store = tl.Store(storage)
    record = store.require_study(study_name)
    return {t.number: {k: v[-1][1] for k, v in store.series([t.id])[t.id].items()}
            for t in store.trials(record.id)}


def test_the_top_configurations_are_retrained_over_seeds_and_tested_once(storage):
    study = tuned(storage)
    result = study.finalize(top=2, seeds=3)
    assert result.final_study == "members-final" and result.metric == "test_acc" and result.look == 1
    assert [c.params for c in result.configs] == [{"k": 0}, {"k": 1}]  # ranked by tuning, best first
    assert [c.source for c in result.configs] == [[0], [1]]
    for c in result.configs:
        assert len(c.values) == 3 and c.test.n == 3 and c.test.low <= c.test.mean <= c.test.high
        assert c.epochs == 3  # retrospective selection put the best epoch at 3 of 6
    second = result.configs[1]  # k=1 scores 0.1 below k=0 on every seed: the comparison says so
    assert result.configs[0].versus_first is None
    assert second.versus_first.diff == pytest.approx(second.test.mean - result.configs[0].test.mean)
    assert second.versus_first.high < 0 and second.versus_first.p_value < 0.05
    # what the trial functions were handed: tuning never saw test, final runs trained on train only
    for numbers in logged("members", storage).values():
        assert numbers["n_eval"] == tf.SPLIT_SIZES["val"]
    final = logged("members-final", storage)
    assert len(final) == 6
    for numbers in final.values():
        assert numbers["n_fit"] == tf.SPLIT_SIZES["train"] and numbers["n_eval"] == tf.SPLIT_SIZES["test"]
        assert numbers["epochs"] == 3
    seeds = {t.seed for t in tl.Store(storage).trials(tl.Store(storage).require_study("members-final").id)}
    assert len(seeds) == 6  # every run has its own seed


def test_refit_on_train_plus_val_and_the_whole_budget(storage):
    result = tuned(storage).finalize(top=1, seeds=2, fit_on="train+val", epochs="budget")
    assert result.fit_on == "train+val" and result.configs[0].epochs is None
    for numbers in logged("members-final", storage).values():
        assert numbers["n_fit"] == tf.SPLIT_SIZES["train"] + tf.SPLIT_SIZES["val"]
        assert numbers["epochs"] == 6


def test_a_rerun_shows_the_stored_result_and_other_choices_need_again(storage):
    study = tuned(storage)
    first = study.finalize(top=2, seeds=2)
    again = study.finalize(top=2, seeds=2)  # same choices: nothing is retrained
    assert again.configs[0].values == first.configs[0].values
    assert len(tl.Store(storage).trials(tl.Store(storage).require_study("members-final").id)) == 4
    with pytest.raises(tl.ConfigError, match="already finalized in 'members-final'.*--again"):
        study.finalize(top=3, seeds=2)
    second = study.finalize(top=3, seeds=2, again=True)
    assert second.final_study == "members-final-2" and second.look == 2 and len(second.configs) == 3
    assert read_final(tl.Store(storage), "members-final").look == 1


def test_finalize_resumes_after_an_interruption(storage):
    study = tuned(storage)
    study.finalize(top=2, seeds=2)
    store = tl.Store(storage)
    final = store.require_study("members-final")
    victim = store.trials(final.id)[-1]
    store.mark_interrupted(final.id, [victim.id])  # as a killed driver leaves it
    result = study.finalize(top=2, seeds=2)
    trials = store.trials(final.id)
    assert len(trials) == 4 and all(t.state == "completed" for t in trials)
    assert sorted(t.number for t in trials) == [0, 1, 2, 3] and len(result.configs[1].values) == 2


def test_bad_requests_say_what_to_do(storage):
    study = tuned(storage)
    with pytest.raises(tl.ConfigError, match="fit_on"):
        study.finalize(fit_on="test")
    empty = tl.Study("empty", SPACE, tf.ensemble_member, metric="val_acc", mode="max", storage=storage)
    with pytest.raises(tl.TuneloopError, match="No study named 'empty'"):
        empty.finalize()
    study.finalize(top=1, seeds=1)
    final = tl.Study("members-final", SPACE, tf.ensemble_member, metric="test_acc", mode="max", storage=storage)
    with pytest.raises(tl.ConfigError, match="finalize the tuning study 'members'"):
        final.finalize()


def test_a_final_run_that_skips_trial_splits_fails_with_the_fix(storage):
    study = tl.Study("nosplit", tl.Space(x=tl.Choice([0])), tf.fit_without_splits, metric="val_acc", mode="max",
                     storage=storage)
    study.run(searcher="grid")
    assert study.best.state == "completed"  # tuning is fine
    result = study.finalize(top=1, seeds=1)
    assert result.configs[0].values == []
    (t,) = tl.Store(storage).trials(tl.Store(storage).require_study("nosplit-final").id)
    assert t.state == "failed" and "did not call trial.splits(data)" in t.error


def test_per_finalizes_the_best_configuration_of_each_value(storage):
    study = tl.Study("members", tl.Space(k=tl.Choice([0, 1, 2]), j=tl.Choice([0, 1])), tf.ensemble_member,
                     metric="val_acc", mode="max", budget={"epochs": 6}, storage=storage)
    study.run(searcher="grid")
    result = study.finalize(top=1, seeds=2, per="k")
    assert result.per == "k" and [c.params["k"] for c in result.configs] == [0, 1, 2]
    assert [c.rank for c in result.configs] == [1, 2, 3] and all(len(c.values) == 2 for c in result.configs)
    with pytest.raises(tl.TuneloopError, match="No trial of 'members' has a parameter 'model'"):
        study.finalize(top=1, seeds=2, per="model", again=True)


def test_rounds_all_chooses_among_every_round_of_the_goal(storage):
    first = tl.Study("members", SPACE, tf.ensemble_member, metric="val_acc", mode="max", budget={"epochs": 6},
                     storage=storage, scientific=["k"])
    first.run(n_trials=3, seed=0)  # k = 0, 1, 2: k=0 is the best
    second = first.next_round(tl.Space(k=tl.Choice([1, 2])))  # a round without the best value
    second.run(n_trials=2, seed=0)
    only = second.finalize(top=1, seeds=1, per="k")
    assert sorted(c.params["k"] for c in only.configs) == [1, 2] and {c.study for c in only.configs} == {"members-r2"}
    every = second.finalize(top=1, seeds=1, per="k", rounds="all", again=True)
    assert sorted(c.params["k"] for c in every.configs) == [0, 1, 2] and every.rounds == "all"
    best = every.configs[0]
    assert (best.params, best.study, best.source) == ({"k": 0}, "members", [0])
    with pytest.raises(tl.ConfigError, match="rounds"):
        second.finalize(rounds="some")


def test_finalize_and_ensemble_print_a_hostile_study_name_as_text(storage, write_experiment):
    """Found trying it as a stranger: finalize's closing line put the study name through Rich markup."""
    from typer.testing import CliRunner

    from tuneloop.cli import app

    name = 'x"""; [/x] [bold]\x1b[31m ../..'
    exp = write_experiment(f"""
        import tuneloop as tl
        import trial_functions as tf
        study = tl.Study({name!r}, tl.Space(k=tl.Choice([0, 1, 2])), tf.ensemble_member, metric="val_acc",
                         mode="max", budget={{"epochs": 2}})
    """)
    runner = CliRunner()
    ran = runner.invoke(app, ["run", str(exp), "--searcher", "grid", "--storage", storage])
    assert ran.exit_code == 0, ran.output
    final = runner.invoke(app, ["finalize", name, "--top", "2", "--seeds", "1", "--file", str(exp), "--storage", storage])
    assert final.exit_code == 0, final.output
    assert "Stored as study" in final.output and "[/x]" in final.output and "\x1b" not in final.output
    ensembled = runner.invoke(app, ["ensemble", name + "-final", "--storage", storage])
    assert ensembled.exit_code in (0, 1) and "Traceback" not in ensembled.output and "\x1b" not in ensembled.output


def test_rerank_reruns_the_best_over_seeds_and_chooses_by_their_mean(storage):
    study = tl.Study("lucky", tl.Space(k=tl.Choice(sorted(tf.LUCKY_QUALITY))), tf.lucky_seed, metric="val_acc",
                     mode="max", storage=storage, seed=3)
    study.run(searcher="grid")  # one run (one seed) per configuration
    store = tl.Store(storage)
    record = store.require_study("lucky")
    single = {t.params["k"]: t.value for t in store.trials(record.id)}
    result = study.finalize(top=1, seeds=2, rerank=3)
    assert len(store.trials(record.id)) == 6  # the tuning study is left as it was
    rerank = store.require_study("lucky-rerank")
    assert rerank.config["kind"] == "rerank" and rerank.config["parent"] == "lucky"
    runs = {k: [v] for k, v in single.items()}
    for t in store.trials(rerank.id):
        assert "val_acc" in t.values and "test_acc" not in t.values  # re-ranking never looks at test
        runs[t.params["k"]].append(t.value)
    best3 = sorted(single, key=single.get, reverse=True)[:3]
    assert {k for k, values in runs.items() if len(values) == 3} == set(best3)
    assert all(len(values) == 1 for k, values in runs.items() if k not in best3)
    means = {k: sum(runs[k]) / 3 for k in best3}
    chosen = result.configs[0]
    assert chosen.params["k"] in best3 and means[chosen.params["k"]] == pytest.approx(max(means.values()))
    assert chosen.tuned.n == 3 and chosen.tuned.mean == pytest.approx(max(means.values()))
    assert result.rerank == [3, 3]
    again = study.finalize(top=1, seeds=2, rerank=3)  # the same 3 (chosen by the tuning study): nothing runs
    assert len(store.trials(rerank.id)) == 6 and again.final_study == result.final_study
    with pytest.raises(AlreadyFinalizedError, match="rerank 3 over 3 seeds"):
        study.finalize(top=1, seeds=2, rerank=4)  # refused before any re-ranking run
    assert len(store.trials(rerank.id)) == 6


def test_listed_runs_a_failed_or_pruned_configuration_again_when_asked():
    from tuneloop.search import Listed
    from tuneloop.search._base import Outcome

    for retry, left in ((False, 1), (True, 2)):
        listed = Listed([{"k": 0}] * 3, retry_failed=retry)
        listed.tell(Outcome({"k": 0}, tl.TrialState.COMPLETED, 0.5))
        listed.tell(Outcome({"k": 0}, tl.TrialState.FAILED))
        assert len(listed.ask(5)) == left


@pytest.mark.parametrize("options, says", [({"rerank": 3, "rerank_seeds": 1}, "2 or more"),
                                            ({"rerank": 3, "per": "k"}, "per="), ({"rerank": 0}, "rerank")])
def test_rerank_refuses_what_it_cannot_do_before_anything_runs(storage, options, says):
    study = tl.Study("lucky", tl.Space(k=tl.Choice(sorted(tf.LUCKY_QUALITY))), tf.lucky_seed, metric="val_acc",
                     mode="max", storage=storage)
    study.run(searcher="grid")
    with pytest.raises(tl.ConfigError, match=says):
        study.finalize(top=1, seeds=2, **options)
    assert tl.Store(storage).get_study("lucky-final") is None


def test_rerank_refuses_a_study_of_its_name_that_is_not_its_own(storage):
    study = tl.Study("lucky", tl.Space(k=tl.Choice(sorted(tf.LUCKY_QUALITY))), tf.lucky_seed, metric="val_acc",
                     mode="max", storage=storage)
    study.run(searcher="grid")
    other = tl.Study("lucky-rerank", tl.Space(k=tl.Choice([0])), tf.lucky_seed, metric="val_acc", mode="max",
                     storage=storage)
    other.run(searcher="grid")  # somebody's own study, named as the re-ranking would be
    with pytest.raises(tl.ConfigError, match="rename or delete it"):
        study.finalize(top=1, seeds=2, rerank=3)
    assert len(tl.Store(storage).trials(tl.Store(storage).require_study("lucky-rerank").id)) == 1
