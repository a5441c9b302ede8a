"""Reading never changes a database: read commands and the dashboard open SQLite with mode=ro,
refuse another program's database with one line, and create nothing where there is nothing."""

import hashlib
import sqlite3

import pytest
from typer.testing import CliRunner

import tuneloop as tl
from tuneloop.cli import app
from tuneloop.store import Store


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _siblings(path):
    """Every file beside ``path`` that SQLite could have made: journals, WAL and shared memory."""
    return sorted(p.name for p in path.parent.iterdir() if p.name.startswith(path.name) and p != path)


@pytest.fixture
def foreign(tmp_path):
    """Another program's SQLite database (rollback journal, as most programs leave theirs)."""
    path = tmp_path / "foreign.db"
    con = sqlite3.connect(path)
    con.executescript("create table users (id integer primary key, name text);"
                      "create table orders (id integer primary key, user_id integer);"
                      "insert into users (name) values ('ada'), ('grace');")
    con.commit()
    con.close()
    return path


@pytest.fixture
def colleague(tmp_path, space):
    """A tuneloop database copied from a colleague: one study, its journal switched to a plain
    rollback one (as a copy made with sqlite3's .backup leaves it)."""
    path = tmp_path / "colleague.db"
    with Store(str(path)) as store:
        record = store.create_study("shared", "loss", "min", space, {"seed": 1})
        t = store.create_trial(record.id, 0, {"x": 0.5, "lr": 0.01, "opt": "adam"}, seed=1)
        store.add_points([(t, 0, 0, "loss", 1.0)])
        store.finish_trial(t, "completed", 0.25, {"loss": 0.25})
    con = sqlite3.connect(path)
    assert con.execute("pragma journal_mode=delete").fetchone() == ("delete",)
    con.close()
    assert _siblings(path) == []
    return path


def _cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def _one_line_error(result, *fragments):
    text = " ".join(result.output.split())
    assert result.exit_code == 1, result.output
    assert not isinstance(result.exception, Exception), result.exception  # a clean exit, not a traceback
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in text, result.output


@pytest.mark.parametrize("command", [
    ["status"], ["trials", "users"], ["best", "users"], ["show", "users", "0"], ["export", "users"],
    ["analyze", "users"], ["report", "users"], ["rounds", "users"], ["idea", "list"], ["idea", "show", "1"],
])
def test_read_commands_refuse_a_foreign_database_and_leave_it_byte_for_byte(foreign, command, tmp_path,
                                                                            monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = _digest(foreign)
    result = _cli(*command, "--storage", foreign)
    _one_line_error(result, f"{foreign} is not a tuneloop database (it has tables orders, users); "
                            f"pass --storage with a tuneloop database")
    assert _digest(foreign) == before
    assert _siblings(foreign) == []  # no -wal, -shm or -journal: nothing was even attempted
    assert not (tmp_path / "report.html").exists()


def test_opening_a_foreign_database_for_writing_refuses_it_too(foreign):
    before = _digest(foreign)
    with pytest.raises(tl.NotTuneloopDatabase, match="is not a tuneloop database .it has tables orders, users."):
        Store(str(foreign))
    assert _digest(foreign) == before and _siblings(foreign) == []


def test_the_dashboard_refuses_a_foreign_database_and_leaves_it_as_it_was(foreign):
    from tuneloop.dashboard import create_app

    before = _digest(foreign)
    with pytest.raises(tl.NotTuneloopDatabase, match="not a tuneloop database"):
        create_app(str(foreign))
    assert _digest(foreign) == before and _siblings(foreign) == []


def test_the_dashboard_reads_a_colleagues_database_without_changing_a_byte(colleague):
    from fastapi.testclient import TestClient

    from tuneloop.dashboard import create_app

    before = _digest(colleague)
    with TestClient(create_app(str(colleague)), base_url="http://localhost") as client:
        studies = client.get("/api/studies")
        assert studies.status_code == 200
        assert [s["name"] for s in studies.json()["studies"]] == ["shared"]
        assert client.get("/api/studies/shared").status_code == 200
    assert _digest(colleague) == before  # no WAL switch, no new table, no version row
    assert _siblings(colleague) == []


def test_status_and_show_read_a_colleagues_database_without_changing_a_byte(colleague):
    before = _digest(colleague)
    status = _cli("status", "--storage", colleague)
    assert status.exit_code == 0 and "shared" in status.output
    assert _cli("show", "shared", "0", "--storage", colleague).exit_code == 0
    assert _digest(colleague) == before and _siblings(colleague) == []


@pytest.mark.parametrize("command", [["status"], ["ui"], ["trials", "x"], ["idea", "list"]])
def test_reading_a_missing_database_creates_nothing_and_says_so_in_one_line(tmp_path, monkeypatch, command):
    monkeypatch.chdir(tmp_path)
    missing = tmp_path / "nothing-here.db"
    result = _cli(*command, "--storage", missing)
    _one_line_error(result, f"No tuneloop database at {missing}; reading never creates one")
    assert list(tmp_path.iterdir()) == []


def test_a_read_only_store_reads_and_cannot_write(colleague, space):
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    with Store(str(colleague), read_only=True) as store:
        record = store.require_study("shared")
        assert [t.value for t in store.trials(record.id)] == [0.25]
        with pytest.raises(tl.StorageError, match="opened read-only"):
            store.create_study("new", "loss", "min", space, {})
        with pytest.raises(DBAPIError, match="readonly database"), store.engine.begin() as conn:
            conn.execute(text("create table intruder (x)"))  # the driver itself refuses: mode=ro
    assert _siblings(colleague) == []
    con = sqlite3.connect(colleague)
    assert "intruder" not in {r[0] for r in con.execute("select name from sqlite_master")}
    con.close()


def test_a_read_only_refusal_is_not_retried(colleague):
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    from tuneloop.store._retry import transient

    with Store(str(colleague), read_only=True) as store, pytest.raises(DBAPIError) as caught, \
            store.engine.begin() as conn:
        conn.execute(text("insert into tuneloop_meta values ('k', 'v')"))
    assert not transient(caught.value)  # it fails at once, not after retry_seconds of waiting


def test_an_empty_file_is_not_read_as_a_tuneloop_database(tmp_path):
    empty = tmp_path / "empty.db"
    empty.touch()
    with pytest.raises(tl.NotTuneloopDatabase, match=r"empty.db is not a tuneloop database \(it has no tables\)"):
        Store(str(empty), read_only=True)
    assert empty.read_bytes() == b""


def test_postgres_read_only_runs_no_ddl_and_refuses_writes(postgres, space):
    from sqlalchemy import create_engine, inspect, text
    from sqlalchemy.exc import DBAPIError

    from tuneloop.store import schema

    with pytest.raises(tl.NotTuneloopDatabase, match="it has no tables"):
        Store(postgres, read_only=True)  # an empty database: nothing created in it
    with Store(postgres) as store:
        store.create_study("pg", "loss", "min", space, {})
    with Store(postgres, read_only=True) as reader:
        assert reader.require_study("pg").metric == "loss"
        with pytest.raises(tl.StorageError, match="opened read-only"):
            reader.create_study("other", "loss", "min", space, {})
        with pytest.raises(DBAPIError, match="read-only transaction"), reader.engine.begin() as conn:
            conn.execute(text("create table intruder (i int)"))  # the server itself refuses: no DDL
    engine = create_engine(postgres)
    with engine.begin() as conn:  # now another program's database: its own tables, none of ours
        schema.metadata.drop_all(conn)
        conn.execute(text("create table users (id serial primary key, name text)"))
    for read_only in (True, False):
        with pytest.raises(tl.NotTuneloopDatabase, match=r"is not a tuneloop database \(it has tables users\)"):
            Store(postgres, read_only=read_only)
    with engine.connect() as conn:
        assert inspect(conn).get_table_names() == ["users"]
    engine.dispose()
