"""Constants several test modules use (importable: tests/support is on the test path)."""

# a name no page may run or render as markup
HOSTILE = "<script>alert(1)</script>"

QUADRATIC_EXPERIMENT = """
    import os, time
    import tuneloop as tl

    space = tl.Space(x=tl.Float(-2.0, 2.0), y=tl.Float(-2.0, 2.0))

    def objective(trial):
        for step in range(3):
            trial.report(step, loss=(trial.params.x - 0.5) ** 2 + trial.params.y ** 2 + 1.0 / (step + 1))
            time.sleep(float(os.environ.get("TRIAL_SLEEP", "0")))
        return {"loss": (trial.params.x - 0.5) ** 2 + trial.params.y ** 2, "pid": os.getpid()}

    study = tl.Study("quad", space, objective, metric="loss", mode="min", searcher="random")
"""


def sqlite_rows(db, sql):
    """The rows ``sql`` reads from the SQLite file ``db`` as another process sees it now; [] before
    its tables exist (tests wait on these rows, never on a clock)."""
    import sqlite3

    con = sqlite3.connect(db)
    try:
        return con.execute(sql).fetchall()
    except sqlite3.OperationalError:  # not created yet
        return []
    finally:
        con.close()


def wait_until(condition, what, timeout=90.0):
    """Wait for an event (a row, a file, a process gone): poll ``condition`` until it holds; fail naming
    ``what`` after ``timeout`` seconds rather than hang."""
    import time

    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
