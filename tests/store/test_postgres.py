"""The store on a real PostgreSQL server: every command works with a postgresql+psycopg URL,
drivers of different studies share one database, the dashboard reads it live."""

import json
import subprocess
import sys
import textwrap

import pytest
import trial_functions as tf
from typer.testing import CliRunner

import tuneloop as tl
from tuneloop.cli import app
from tuneloop.store import Store


def test_a_study_runs_resumes_and_reads_back(postgres, space):
    study = tl.Study("pg", space, tf.quadratic, metric="loss", mode="min", storage=postgres, seed=0)
    study.run(6, searcher="random")
    study.run(9, searcher="random")  # resumes: 3 more
    store = Store(postgres)
    record = store.get_study("pg")
    trials = store.trials(record.id)
    assert len(trials) == 9 and all(t.state == "completed" for t in trials)
    series = store.series([t.id for t in trials], names=["loss"])
    assert all([s for s, _ in series[t.id]["loss"]] == [0, 1, 2, 3] for t in trials)
    assert study.best.value == min(t.value for t in trials)


def test_worker_processes_write_through_the_driver(postgres, space):
    study = tl.Study("pg-proc", space, tf.quadratic, metric="loss", mode="min", storage=postgres, seed=1)
    summary = study.run(6, searcher="random", workers=2)
    assert summary.outcomes == {"completed": 6}


@pytest.mark.slow  # 2-5 s in the default run: .ci/run runs it in its second pytest call
def test_two_drivers_of_different_studies_share_one_database(postgres, tmp_path):
    script = tmp_path / "drive.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(tf.__file__.rsplit('/', 1)[0])!r})
        import tuneloop as tl, trial_functions as tf
        space = tl.Space(x=tl.Float(-2.0, 2.0))
        tl.Study(sys.argv[1], space, tf.quadratic, metric="loss", mode="min", storage={postgres!r},
                 seed=int(sys.argv[2])).run(12, searcher="random")
    """))
    procs = [subprocess.Popen([sys.executable, str(script), f"study{i}", str(i)]) for i in range(2)]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    store = Store(postgres)
    for i in range(2):
        trials = store.trials(store.get_study(f"study{i}").id)
        assert len(trials) == 12 and len({t.number for t in trials}) == 12


def test_every_command_takes_a_postgres_url(postgres, write_experiment, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exp = write_experiment("""
        import tuneloop as tl
        def train(trial):
            for step in range(3):
                trial.report(step, loss=(trial.params.x - 0.3) ** 2 + 1 / (step + 1))
            return {"loss": (trial.params.x - 0.3) ** 2}
        study = tl.Study("cli-pg", tl.Space(x=tl.Float(-1.0, 1.0)), train, metric="loss", mode="min")
    """)
    runner = CliRunner()

    def cli(*args):
        result = runner.invoke(app, [str(a) for a in args])
        assert result.exit_code == 0, result.output
        return result.output

    assert "Ran 5 trials" in cli("run", exp, "--trials", 5, "--storage", postgres)
    assert "cli-pg" in cli("status", "--storage", postgres)
    assert "Trials of cli-pg (5)" in cli("trials", "cli-pg", "--storage", postgres)
    best = json.loads(cli("best", "cli-pg", "--json", "--storage", postgres))
    assert "Trial" in cli("show", "cli-pg", best["number"], "--storage", postgres)
    assert len(json.loads(cli("export", "cli-pg", "--storage", postgres))["trials"]) == 5
    assert "importance" in cli("analyze", "cli-pg", "--storage", postgres)
    report = tmp_path / "r.html"
    cli("report", "cli-pg", "-o", report, "--storage", postgres)
    assert report.stat().st_size > 1000
    monkeypatch.setenv("TUNELOOP_STORAGE", postgres)  # the environment variable works as well
    assert "cli-pg" in cli("status")


def test_the_dashboard_reads_it_live(postgres, space):
    from fastapi.testclient import TestClient

    from tuneloop.dashboard import create_app

    study = tl.Study("live", space, tf.quadratic, metric="loss", mode="min", storage=postgres, seed=2)
    study.run(3, searcher="random")
    client = TestClient(create_app(postgres), base_url="http://localhost")
    names = [s["name"] for s in client.get("/api/studies").json()["studies"]]
    assert names == ["live"]
    study.run(5, searcher="random")  # another driver's writes show up without a restart
    view = client.get("/api/studies/live").json()
    assert view["counts"]["total"] == 5
    page = client.get("/api/trials/live?sort=param:x&order=desc&limit=3").json()  # sorted in PostgreSQL (jsonb)
    xs = [t["params"]["x"] for t in page["rows"]]
    assert page["matched"] == 5 and len(xs) == 3 and xs == sorted(xs, reverse=True)
    every = [t["params"]["x"] for t in client.get("/api/trials/live").json()["rows"]]
    assert xs == sorted(every, reverse=True)[:3]


def test_a_wrong_postgres_url_fails_with_the_fix(postgres_server):
    with pytest.raises(tl.StorageError) as info:
        Store(postgres_server.url("postgres").replace(str(postgres_server.port), "1"))
    assert "1" in str(info.value)


@pytest.mark.slow  # long end to end: .ci/run runs it in its second pytest call
def test_a_run_rides_out_a_database_restart(postgres, postgres_server):
    """The server goes down mid-run for 1.5 s: writes wait and retry, nothing is lost or doubled."""
    import threading
    import time

    study = tl.Study("outage", tl.Space(x=tl.Float(-2.0, 2.0)), tf.slow_quadratic, metric="loss", mode="min",
                     storage=postgres, seed=4)
    outcome = {}
    runner = threading.Thread(target=lambda: outcome.update(summary=study.run(12, searcher="random")))
    runner.start()
    with Store(postgres) as store:
        record = None
        while record is None or store.count_finished(record.id) < 2:
            time.sleep(0.05)
            record = store.get_study("outage")
    postgres_server.stop("fast")
    time.sleep(1.5)
    postgres_server.start()
    runner.join(timeout=120)
    assert outcome["summary"].outcomes == {"completed": 12}
    with Store(postgres) as store:
        trials = store.trials(store.get_study("outage").id)
        assert sorted(t.number for t in trials) == list(range(12))
        series = store.series([t.id for t in trials], names=["loss"])
        assert all([s for s, _ in series[t.id]["loss"]] == [0, 1, 2, 3] for t in trials)


def test_a_database_that_stays_down_fails_with_the_cause_and_the_fix(postgres, postgres_server):
    store = Store(postgres, retry_seconds=0.5)
    postgres_server.stop("fast")
    try:
        with pytest.raises(tl.StorageError, match="stayed unavailable for 0.5 s; check that the database server"):
            store.get_study("anything")
    finally:
        postgres_server.start()
        store.close()
