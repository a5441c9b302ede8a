"""Optuna -> tuneloop -> Optuna: studies built with Optuna's own API, real SQLite and journal files."""

from __future__ import annotations

import warnings

import optuna
import pytest
from shared import HOSTILE
from typer.testing import CliRunner

import tuneloop as tl
from tuneloop.cli import app
from tuneloop.errors import ConfigError
from tuneloop.interop import export_optuna, import_optuna
from tuneloop.interop._common import space_code
from tuneloop.store import Store

STATES = {"COMPLETE": "completed", "PRUNED": "pruned", "FAIL": "failed"}


def _optuna_trials(source: str, name: str) -> list:
    storage = source if "://" in source else _journal(source)
    return optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)


def _journal(path: str):
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    return JournalStorage(JournalFileBackend(path))


def _cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_round_trip_keeps_every_trial_state_value_and_curve(optuna_sqlite, storage, tmp_path):
    original = _optuna_trials(optuna_sqlite.source, optuna_sqlite.name)
    finished = [t for t in original if t.state.name in STATES]
    assert {t.state.name for t in finished} == set(STATES)  # the fixture has all three
    store = Store(storage)
    summary = import_optuna(store, "imported", optuna_sqlite.source)
    record = summary.study
    assert (record.metric, record.mode.value) == ("loss", "min")
    assert summary.skipped == {"running or waiting in Optuna": 1}
    assert record.config["imported_from"]["user_attrs"] == {"owner": "someone"}
    space = record.space
    assert isinstance(space["lr"], tl.LogFloat) and isinstance(space["act"], tl.Choice)
    assert (space["width"].step, space["dropout"].step, space["layers"].log) == (16, 0.1, True)

    # tuneloop's trials, field by field against Optuna's
    trials = store.trials(record.id)
    series = store.series([t.id for t in trials])
    assert [t.number for t in trials] == [t.number for t in finished]
    for ours, theirs in zip(trials, finished, strict=True):
        assert ours.state.value == STATES[theirs.state.name]
        assert ours.params == theirs.params
        assert ours.value == theirs.value
        assert series[ours.id].get("loss", []) == sorted(theirs.intermediate_values.items())
        system = {f"optuna:{k}": v for k, v in theirs.system_attrs.items()}  # the sampler's notes
        assert ours.attrs == {"commit": "abc123", "n_params": theirs.user_attrs["n_params"], **system}  # no list
        assert ours.started_at == theirs.datetime_start.timestamp()
        assert ours.finished_at == theirs.datetime_complete.timestamp()

    # and back: a new Optuna study equal to the first, trial by trial
    target = f"sqlite:///{tmp_path / 'back.db'}"
    assert export_optuna(store, "imported", target) == (len(finished), 0)
    back = optuna.load_study(study_name="imported", storage=target)
    assert back.direction == optuna.study.StudyDirection.MINIMIZE and back.metric_names == ["loss"]
    for a, b in zip(back.get_trials(deepcopy=False), finished, strict=True):
        assert (a.number, a.state, a.params, a.distributions, a.value, a.intermediate_values) == (
            b.number, b.state, b.params, b.distributions, b.value, b.intermediate_values)
        assert a.user_attrs == {k: v for k, v in b.user_attrs.items() if k != "shape"}
        assert a.system_attrs == b.system_attrs
        assert (a.datetime_start, a.datetime_complete) == (b.datetime_start, b.datetime_complete)


def test_journal_file_import_and_cli_read_and_export(optuna_journal, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TUNELOOP_STORAGE", raising=False)
    result = _cli("import", "optuna", "fromjournal", "--from", optuna_journal.source)
    assert result.exit_code == 0, result.output
    assert "Imported 8 trials" in result.output and "tl.LogFloat(0.0001, 0.1)" in result.output
    original = [t for t in _optuna_trials(optuna_journal.source, optuna_journal.name) if t.state.name in STATES]
    store = Store("tuneloop.db", read_only=True)
    trials = store.trials(store.require_study("fromjournal").id)
    assert [(t.number, t.state.value, t.params, t.value) for t in trials] == [
        (t.number, STATES[t.state.name], t.params, t.value) for t in original]
    for command in (("trials", "fromjournal"), ("show", "fromjournal", "0"), ("best", "fromjournal")):
        shown = _cli(*command)
        assert shown.exit_code == 0, shown.output
    # export to a journal file and read it back with Optuna
    exported = _cli("export", "fromjournal", "--format", "optuna", "-o", "back.log")
    assert exported.exit_code == 0, exported.output
    back = _optuna_trials(str(tmp_path / "back.log"), "fromjournal")
    assert [(t.number, t.state, t.params, t.value, t.intermediate_values) for t in back] == [
        (t.number, t.state, t.params, t.value, t.intermediate_values) for t in original]
    again = _cli("export", "fromjournal", "--format", "optuna", "-o", "back.log")  # never a second study there
    assert again.exit_code == 1 and "already holds an Optuna study" in again.output


def test_an_imported_study_continues_with_study_run(optuna_journal, storage):
    store = Store(storage)
    summary = import_optuna(store, "go-on", optuna_journal.source)
    imported = sum(summary.counts.values())

    def fn(trial):
        p = trial.params
        return {"loss": (p.lr - 0.01) ** 2 + p.dropout + p.layers / p.width}

    study = tl.Study("go-on", summary.study.space, fn, metric="loss", mode="min", storage=storage, searcher="tpe")
    study.run(n_trials=imported + 3, executor="inline")
    trials = study.trials
    assert len(trials) == imported + 3
    assert [t.number for t in trials[imported:]] == [imported, imported + 1, imported + 2]
    assert all(t.state.value == "completed" for t in trials[imported:])


def test_conditional_parameters_and_widened_ranges(storage):
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    study = optuna.create_study(study_name="cond")
    opt = CategoricalDistribution(["sgd", "adam"])
    for i, (name, lr_high) in enumerate([("sgd", 0.1), ("adam", 0.1), ("sgd", 0.5)]):
        params = {"opt": name, "lr": 0.05 * (i + 1)}
        dists = {"opt": opt, "lr": FloatDistribution(0.0, lr_high)}
        if name == "sgd":
            params["momentum"], dists["momentum"] = 0.9, FloatDistribution(0.0, 0.99)
        study.add_trial(optuna.trial.create_trial(params=params, distributions=dists, value=float(i)))
    summary = import_optuna(Store(storage), "cond", _into_file(study, storage))
    space = summary.study.space
    assert space["lr"] == tl.Float(0.0, 0.5)  # the union of both ranges
    assert space["opt"].child("sgd") == tl.Space(momentum=tl.Float(0.0, 0.99)) and space["opt"].child("adam") is None
    assert eval(space_code(space), {"tl": tl}) == space  # the line the CLI prints builds the same space


def _into_file(study, storage: str) -> str:
    """Copy an in-memory Optuna study into a journal file beside ``storage``'s database."""
    path = storage.removeprefix("sqlite:///") + ".optuna.log"
    optuna.copy_study(from_study_name=study.study_name, from_storage=study._storage, to_storage=_journal(path))
    return path


def test_hostile_names_are_renamed_kept_and_written_back(storage, tmp_path):
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    study = optuna.create_study(study_name=HOSTILE, direction="maximize")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study.set_metric_names([f"acc {HOSTILE}"])
    weird = "lr-[bold]\x1b[31m"
    dists = {weird: FloatDistribution(0.0, 1.0), "act": CategoricalDistribution([HOSTILE, "relu"])}
    study.add_trial(optuna.trial.create_trial(params={weird: 0.5, "act": HOSTILE}, distributions=dists, value=0.7,
                                              user_attrs={HOSTILE: HOSTILE}))
    source = _into_file(study, storage)
    result = _cli("import", "optuna", "h", "--from", source, "--storage", storage)
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output
    store = Store(storage)
    record = store.require_study("h")
    (trial,) = store.trials(record.id)
    assert trial.params == {"lr_bold_31m": 0.5, "act": HOSTILE} and trial.attrs == {HOSTILE: HOSTILE}
    assert record.metric == f"acc {HOSTILE}" and record.mode.value == "max"
    target = str(tmp_path / "back.log")
    export_optuna(store, "h", target, optuna_study=HOSTILE)
    (back,) = _optuna_trials(target, HOSTILE)
    assert back.params == {weird: 0.5, "act": HOSTILE} and back.value == 0.7


@pytest.mark.parametrize("content", [b"not a database, just text\n", b"SQLite format 3\x00" + b"\x00" * 200, None])
def test_a_file_that_is_not_optuna_is_refused_in_one_line_and_left_alone(tmp_path, content, storage):
    path = tmp_path / "other.db"
    if content is None:  # a real SQLite database of another program: tuneloop's own
        Store(f"sqlite:///{path}").close()
    else:
        path.write_bytes(content)
    before = path.read_bytes()
    for source in (str(path), f"sqlite:///{path}"):
        result = _cli("import", "optuna", "x", "--from", source, "--storage", storage)
        assert result.exit_code == 1
        assert result.output.count("\n") == 1 and result.output.startswith("Error:"), result.output
    assert path.read_bytes() == before
    missing = _cli("import", "optuna", "x", "--from", f"sqlite:///{tmp_path / 'none.db'}", "--storage", storage)
    assert missing.exit_code == 1 and not (tmp_path / "none.db").exists()
    assert Store(storage).get_study("x") is None


def test_a_taken_name_is_refused(storage, optuna_journal):
    store = Store(storage)
    import_optuna(store, "taken", optuna_journal.source)
    with pytest.raises(ConfigError, match="already exists"):
        import_optuna(store, "taken", optuna_journal.source)


def _trade_off(trial):
    """Accuracy grows with width, so do latency and size: a front, and trials breaking the constraints."""
    w, lr = trial.params.width, trial.params.lr
    acc = 1 - 1 / (1 + w / 16) - abs(lr - 0.01)
    return {"val_acc": acc, "latency_ms": w / 50, "params_m": w * w / 20000}


def _by_params(trials) -> set:
    return {tuple(sorted(t.params.items())) for t in trials}


def test_a_multi_objective_constrained_study_goes_to_optuna_and_back(storage, tmp_path):
    study = tl.Study("mo", tl.Space(width=tl.Int(4, 256, log=True), lr=tl.LogFloat(1e-3, 1e-1)), _trade_off,
                     objectives={"val_acc": "max", "latency_ms": "min"},
                     constraints={"latency_ms": ("<=", 2.0), "params_m": ("<=", 1.0)}, storage=storage,
                     searcher="random", seed=0, executor="inline")
    study.run(n_trials=16)
    front, trials = study.front, study.trials
    infeasible = [t for t in trials if not study.objectives.feasible(t.values)]
    assert len(front) >= 2 and infeasible  # the test needs both

    store = Store(storage)
    target = str(tmp_path / "mo.log")  # a journal file: an SQLite one costs a second more (the round trip above has one)
    assert export_optuna(store, "mo", target) == (16, 0)
    back = optuna.load_study(study_name="mo", storage=_journal(target))
    assert back.directions == [optuna.study.StudyDirection.MAXIMIZE, optuna.study.StudyDirection.MINIMIZE]
    assert back.metric_names == ["val_acc", "latency_ms"]
    assert _by_params(back.best_trials) == _by_params(front)  # Optuna's own Pareto front, feasibility included
    for ours, theirs in zip(trials, back.get_trials(deepcopy=False), strict=True):
        assert theirs.values == [ours.values["val_acc"], ours.values["latency_ms"]]
        assert (max(theirs.constraints.values()) <= 0) == study.objectives.feasible(ours.values)

    summary = import_optuna(store, "mo-again", target)
    record = summary.study
    assert record.objectives == study.objectives  # names, directions, constraints with their bounds
    again = store.trials(record.id)
    assert [t.number for t in record.objectives.front(again)] == [t.number for t in front]
    for ours, theirs in zip(trials, again, strict=True):  # params_m is no objective: read back from its constraint
        assert theirs.values["params_m"] == pytest.approx(ours.values["params_m"], abs=1e-12)
    assert "constraints" not in str(again[0].attrs)  # Optuna's constraint attributes became values, not attributes
    assert export_optuna(store, "mo-again", str(tmp_path / "again.log")) == (16, 0)


def test_an_optuna_multi_objective_study_with_constraints_imports_with_its_front(storage, tmp_path):
    def objective(trial):
        x, y = trial.suggest_float("x", 0, 1), trial.suggest_float("y", 0, 1)
        trial.set_constraint("budget", x + y - 1.2)  # feasible when x + y <= 1.2
        return x, (1 - x) ** 2 + y

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(study_name="nsga", directions=["maximize", "minimize"],
                                sampler=optuna.samplers.NSGAIISampler(seed=0))
    study.optimize(objective, n_trials=20)
    source = _into_file(study, storage)
    store = Store(storage)
    record = import_optuna(store, "nsga", source).study
    objectives = record.objectives
    assert [(o.name, o.direction.value) for o in objectives.items] == [("objective_0", "max"), ("objective_1", "min")]
    assert [str(c) for c in objectives.constraints] == ["constraint_budget <= 0"]
    trials = store.trials(record.id)
    assert _by_params(objectives.front(trials)) == _by_params(study.best_trials)
    assert sum(not objectives.feasible(t.values) for t in trials) == sum(
        t.constraints["budget"] > 0 for t in study.trials)
    named = import_optuna(store, "named", source, metric=["acc", "cost"]).study
    assert named.objectives.names == ["acc", "cost"]
    with pytest.raises(ConfigError, match="has 2 objectives; name each with --metric NAME"):
        import_optuna(store, "short", source, metric="acc")
    result = _cli("import", "optuna", "cli", "--from", source, "--metric", "acc", "--metric", "cost",
                  "--storage", storage)
    assert result.exit_code == 0, result.output
    assert "max acc, min cost; subject to constraint_budget <= 0" in result.output
    assert "objectives={'acc': 'max', 'cost': 'min'}, constraints={'constraint_budget': ('<=', 0.0)}" in result.output
    back = tmp_path / "nsga.log"
    export_optuna(store, "nsga", str(back))
    (again,) = [t for t in _optuna_trials(str(back), "nsga") if t.number == 0]
    assert again.constraints == study.trials[0].constraints  # Optuna's own key, written back



@pytest.mark.slow
def test_import_into_postgresql_and_export_to_it(optuna_sqlite, postgres, postgres_server):
    """The same round trip with PostgreSQL as tuneloop's store and as the Optuna storage exported to
    (another database: Optuna's tables and tuneloop's share names, so one database never holds both)."""
    store = Store(postgres)
    summary = import_optuna(store, "pg", optuna_sqlite.source)
    finished = [t for t in _optuna_trials(optuna_sqlite.source, optuna_sqlite.name) if t.state.name in STATES]
    assert sum(summary.counts.values()) == len(finished)
    with pytest.raises(ConfigError, match="another program's tables"):
        export_optuna(store, "pg", postgres)
    target = postgres_server.create_database("optuna_export_target")
    export_optuna(store, "pg", target, optuna_study="back")
    reader = optuna.storages.RDBStorage(target)
    back = optuna.load_study(study_name="back", storage=reader).get_trials(deepcopy=False)
    reader.engine.dispose()
    store.close()
    assert [(t.number, t.state, t.params, t.value, t.intermediate_values) for t in back] == [
        (t.number, t.state, t.params, t.value, t.intermediate_values) for t in finished]
