"""The store on a real SQLite file: round trips, attempts, schema versions, bad paths, bad rows."""

import math
import sqlite3

import pytest

import tuneloop as tl
from tuneloop.store import SCHEMA_VERSION, Store
from tuneloop.store.store import point_rows


@pytest.fixture
def store(storage):
    with Store(storage) as s:
        yield s


def make_study(store, space, name="s"):
    return store.create_study(name, "loss", "min", space, {"seed": 1})


def test_study_and_trials_round_trip(store, space):
    study = make_study(store, space)
    assert store.get_study("s").space == space
    a = store.create_trial(study.id, 0, {"x": 0.1, "lr": 0.01, "opt": "adam"}, seed=11)
    b = store.create_trial(study.id, 1, {"x": 0.2, "lr": 0.01, "opt": "adam"}, seed=12)
    store.add_points([(a, 0, 0, "loss", 1.0), (a, 0, 1, "loss", 0.5), (a, 0, 1, "acc", 0.7)])
    store.finish_trial(a, "completed", 0.5, {"loss": 0.5, "acc": 0.7})
    store.finish_trial(b, "diverged", math.nan, {"loss": math.nan},
                       batch={"metrics": point_rows([(b, 0, 0, "loss", math.nan)])})
    trials = store.trials(study.id)
    assert [t.state for t in trials] == ["completed", "diverged"]
    assert trials[0].value == 0.5 and trials[0].values == {"loss": 0.5, "acc": 0.7}
    assert trials[0].duration is not None and trials[0].duration >= 0
    assert trials[1].value is None and math.isnan(trials[1].values["loss"])
    series = store.series([a, b])
    assert series[a] == {"loss": [(0, 1.0), (1, 0.5)], "acc": [(1, 0.7)]}
    assert math.isnan(series[b]["loss"][0][1])
    assert store.count_finished(study.id) == 2


def test_a_rerun_attempt_hides_the_interrupted_points_but_keeps_them(store, space, storage):
    study = make_study(store, space)
    t = store.create_trial(study.id, 0, {"x": 0.1, "lr": 0.01, "opt": "adam"}, seed=1)
    store.add_points([(t, 0, 0, "loss", 9.0)])
    assert store.mark_interrupted(study.id) == 1
    assert store.restart_trial(t) == 1
    store.finish_trial(t, "completed", 0.2, {"loss": 0.2}, batch={"metrics": point_rows([(t, 1, 0, "loss", 0.2)])})
    assert store.series([t]) == {t: {"loss": [(0, 0.2)]}}
    rows = sqlite3.connect(storage.removeprefix("sqlite:///")).execute("select attempt, value from metrics").fetchall()
    assert sorted(rows) == [(0, 9.0), (1, 0.2)]


def test_studies_summary_counts_states_and_best(store, space):
    study = make_study(store, space)
    for number, (state, value) in enumerate([("completed", 0.3), ("completed", 0.1), ("failed", None)]):
        t = store.create_trial(study.id, number, {"x": 0.0, "lr": 0.1, "opt": "adam"}, seed=0)
        store.finish_trial(t, state, value, {})
    (summary,) = store.studies()
    assert summary.counts == {"completed": 2, "failed": 1}
    assert summary.best_value == 0.1 and summary.n_trials == 3


def test_sqlite_runs_in_wal_mode(store, storage):
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


def test_a_newer_schema_is_refused_and_left_untouched(storage, space):
    with Store(storage) as s:
        make_study(s, space)
    path = storage.removeprefix("sqlite:///")
    con = sqlite3.connect(path)
    con.execute("update tuneloop_meta set value = ? where key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    con.commit()
    before = con.execute("select name from sqlite_master order by name").fetchall()
    con.close()
    with pytest.raises(tl.SchemaVersionError, match="written by a newer tuneloop .*pip install -U tuneloop"):
        Store(storage)
    con = sqlite3.connect(path)
    assert con.execute("select name from sqlite_master order by name").fetchall() == before


def test_a_folder_that_does_not_exist_fails_before_anything_is_written(tmp_path):
    target = tmp_path / "missing" / "t.db"
    with pytest.raises(tl.StorageError, match="does not exist; pass --storage with a writable path"):
        Store(str(target))
    assert not (tmp_path / "missing").exists()


def test_a_path_under_a_file_fails_clearly(tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(tl.StorageError, match="Cannot create the store"):
        Store(f"sqlite:///{tmp_path / 'afile' / 't.db'}")


def test_a_file_that_is_not_a_database_fails_clearly(tmp_path):
    bad = tmp_path / "notes.db"
    bad.write_text("this is not sqlite " * 100)
    with pytest.raises(tl.StorageError, match="Cannot open the store .*not a database"):
        Store(str(bad))
    assert bad.read_text().startswith("this is not sqlite")


def test_a_corrupt_row_names_the_trial(store, space, storage):
    study = make_study(store, space)
    store.create_trial(study.id, 7, {"x": 0.0}, seed=0)
    con = sqlite3.connect(storage.removeprefix("sqlite:///"))
    con.execute("update trials set params = '{broken' where number = 7")
    con.commit()
    con.close()
    with pytest.raises(tl.StorageError, match=r"Corrupt row: the params of trial 7 \(id \d+\) is not valid JSON"):
        store.trials(study.id)


def test_a_bare_path_and_the_environment_pick_the_database(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TUNELOOP_STORAGE", raising=False)
    with Store() as s:
        assert s.url == f"sqlite:///{tmp_path / 'tuneloop.db'}"
    monkeypatch.setenv("TUNELOOP_STORAGE", str(tmp_path / "other.db"))
    with Store() as s:
        assert s.url.endswith("other.db")
    assert (tmp_path / "other.db").exists()


def test_a_missing_driver_names_the_extra_to_install():
    with pytest.raises(tl.StorageError, match=r"driver is missing"):
        Store("postgresql+nosuchdriver://u@localhost/db")


def test_require_study_and_trial_by_number(store, space):
    study = make_study(store, space, name="found")
    store.create_trial(study.id, 0, {"x": 0.0}, seed=0)
    store.create_trial(study.id, 1, {"x": 1.0}, seed=0)
    assert store.require_study("found").id == study.id
    assert store.trial(study.id, 1).params == {"x": 1.0}
    assert [t.number for t in store.trials(study.id, numbers=[1])] == [1]
    with pytest.raises(tl.TuneloopError, match="No study named 'nope' in .*; studies there: found"):
        store.require_study("nope")
    with pytest.raises(tl.TuneloopError, match="no trial 7"):
        store.trial(study.id, 7)


def _tamper(storage, sql):
    con = sqlite3.connect(storage.removeprefix("sqlite:///"))
    con.execute(sql)
    con.commit()
    con.close()


@pytest.mark.parametrize("stored, kind", [("[1, 2]", "list"), ('"text"', "str"), ("3", "int")])
def test_params_that_are_json_but_not_an_object_are_a_corrupt_row(store, space, storage, stored, kind):
    study = make_study(store, space)
    store.create_trial(study.id, 3, {"x": 0.0}, seed=0)
    _tamper(storage, f"update trials set params = '{stored}'")
    with pytest.raises(tl.StorageError, match=rf"Corrupt row: the params of trial 3 \(id \d+\) is not a JSON object "
                                              rf"but a {kind}; repair or delete that row"):
        store.trials(study.id)


@pytest.mark.parametrize("stored, cause", [
    ('{"x": {"type": "float", "low": 0.0}}', "parameter 'x': it has no 'high' (every float parameter has 'low' and 'high')"),
    ('{"x": {"type": "int", "high": 3}}', "parameter 'x': it has no 'low'"),
    ('{"x": {"type": "choice"}}', "parameter 'x': it has no 'values'"),
    ('{"x": {"type": "nope"}}', "parameter 'x': unknown parameter type 'nope'"),
    ('{"x": 1}', "parameter 'x': a parameter is stored as int, not an object"),
    ("[]", "a space is stored as list, not an object"),
    ('{"x": {"type": "float", "low": 1.0, "high": 0.0}}', "parameter 'x': The 'low' argument of Float"),
])
def test_a_stored_space_that_is_not_one_is_a_corrupt_space(store, space, storage, stored, cause):
    make_study(store, space, name="bad")
    _tamper(storage, f"update studies set space = '{stored}'")
    with pytest.raises(tl.StorageError, match="Corrupt space: the space of study 'bad' is not a valid space") as caught:
        store.get_study("bad")
    assert cause in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("read_only", [False, True])
def test_a_schema_version_that_is_not_a_whole_number_is_one_clear_error(store, space, storage, read_only):
    make_study(store, space)
    _tamper(storage, "update tuneloop_meta set value = '5.0' where key = 'schema_version'")
    with pytest.raises(tl.StorageError, match="has a corrupt schema version '5.0' in table tuneloop_meta"):
        Store(storage, read_only=read_only)


def test_numbers_past_64_bits_name_no_trial_and_are_refused_as_seeds(store, space):
    study = make_study(store, space)
    store.create_trial(study.id, 0, {"x": 0.0}, seed=0)
    assert store.trials(study.id, numbers=[2**64, -(2**70), 0])[0].number == 0
    with pytest.raises(tl.NotFound, match="no trial 99999999999999999999999"):
        store.trial(study.id, 99999999999999999999999)
    with pytest.raises(tl.ConfigError, match="too large for the store .*64-bit integers"):
        store.create_trial(study.id, 1, {"x": 0.0}, seed=2**64)
    assert [t.number for t in store.trials(study.id)] == [0]  # nothing half-written


@pytest.mark.parametrize("url", ["sqlite://:::x", "sqlite://host/x.db", "postgresql://u@h:notaport/db"])
def test_a_url_that_is_not_one_is_a_storage_error(url):
    with pytest.raises(tl.StorageError, match="is not a database URL"):
        Store(url)


def test_a_new_database_gets_the_schema_and_an_empty_table_of_ours_gets_its_version(tmp_path):
    path = tmp_path / "t.db"
    con = sqlite3.connect(path)
    con.execute("create table tuneloop_meta (key varchar(64) primary key, value text not null)")
    con.close()
    with Store(str(path)):
        pass
    con = sqlite3.connect(path)
    assert con.execute("select value from tuneloop_meta").fetchall() == [(str(SCHEMA_VERSION),)]
    con.close()


def test_a_bare_path_with_url_characters_names_that_very_file(tmp_path, space):
    folder = tmp_path / "odd ?#%25 ünï"
    folder.mkdir()
    path = folder / "a b?c#d%41[x].db"
    with Store(str(path)) as s:
        make_study(s, space)
        assert s.artifact_dir == folder / "a b?c#d%41[x]-artifacts"
    with Store(str(path), read_only=True) as s:
        assert [x.name for x in s.studies()] == ["s"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["odd ?#%25 ünï"]  # nothing beside it, under a cut name
    assert path.exists()


@pytest.mark.slow  # 2-5 s in the default run: .ci/run runs it in its second pytest call
def test_processes_creating_one_new_sqlite_file_at_once_all_open_it(tmp_path):
    """Four drivers started together on a fresh database file (issue 18): none fails with 'table
    already exists' or a duplicate version row. Separate processes, released together by a file."""
    import subprocess
    import sys

    db, go = tmp_path / "fresh.db", tmp_path / "go"
    script = (
        "import pathlib, sys, time\n"
        "from tuneloop.store import Store\n"
        "go = pathlib.Path(sys.argv[2])\n"
        "while not go.exists(): time.sleep(0.001)\n"
        "with Store(sys.argv[1]) as s: print(len(s.studies()))\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, str(db), str(go)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(4)]
    go.touch()
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, [err for _, err in results]
    assert [out.strip() for out, _ in results] == ["0"] * 4
