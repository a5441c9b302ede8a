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
