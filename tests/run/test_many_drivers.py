"""Many drivers, one study: four `tuneloop run` processes and two ask/tell clients on one SQLite
file and on one PostgreSQL server, one driver SIGKILLed in the middle of a trial. The study ends with
exactly N finished trials, no number and no configuration twice, and the killed driver's trial run
again once, by another driver, as its attempt 1. The fast cases below check what that rests on: a
driver that is not the study's first reseeds its searcher, and every driver learns from the others.

Every trial function leaves a marker per (number, attempt, driver), so the test sees which driver
ran what; the survivors' first trials wait at a gate until the victim's trial is running (seen in
the store), so the kill always lands mid-trial and mid-study."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

import tuneloop as tl

N = 12

EXPERIMENT = """
    import os, pathlib, time
    import tuneloop as tl

    MARKS = pathlib.Path(os.environ["MARKS"])
    space = tl.Space(x=tl.Float(-2.0, 2.0), y=tl.Float(-2.0, 2.0))

    def objective(trial):
        who = os.environ["DRIVER"]
        (MARKS / f"ran-{trial.number}-a{trial._spec.attempt}-{who}").touch()
        while who == "victim":  # runs until the test kills this driver
            time.sleep(0.05)
        while not (MARKS / "gate").exists():  # the others' first trials wait for the victim's to run
            time.sleep(0.01)
        return {"loss": trial.params.x ** 2 + trial.params.y}

    study = tl.Study("shared", space, objective, metric="loss", mode="min", searcher="random")
"""

# a client running trials itself: ask, run, tell (each with its marker), twice
CLIENT = """
    import os, pathlib, sys
    from tuneloop.experiment import load_study

    marks, url = pathlib.Path(os.environ["MARKS"]), sys.argv[2]
    study = load_study(sys.argv[1], "shared")
    for _ in range(2):
        t = study.ask(storage=url)
        (marks / f"ran-{t.number}-a{t._spec.attempt}-{os.environ['DRIVER']}").touch()
        study.tell(t, {"loss": t.params.x ** 2 + t.params.y}, storage=url)
"""


@pytest.fixture(params=["sqlite", "postgres"])
def url(request, storage):
    return request.getfixturevalue("postgres") if request.param == "postgres" else storage


def _wait_for(condition, what, timeout=60.0, gone=None):
    """``condition()`` once it is not None; ``gone``: a process whose exit means it never will be."""
    deadline = time.monotonic() + timeout
    while (found := condition()) is None:
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        assert gone is None or gone.poll() is None, f"{what}: the process ended: {gone.communicate()}"
        time.sleep(0.05)
    return found


def _ran(marks):
    """{number: [(attempt, driver), ...]} of every trial function started."""
    out = {}
    for marker in marks.glob("ran-*"):
        _, number, attempt, who = marker.name.split("-")
        out.setdefault(int(number), []).append((int(attempt[1:]), who))
    return {n: sorted(v) for n, v in out.items()}


def _victims_trial(store, pid):
    """The number of the running trial leased to process ``pid``, once there is one."""
    study = store.get_study("shared")
    if study is None:
        return None
    leased = {i for i, lease in store.leases(study.id).items() if lease["pid"] == pid}
    running = [t.number for t in store.trials(study.id, states=["running"]) if t.id in leased]
    return running[0] if running else None


@pytest.mark.slow  # four Python processes per back end: ~6 s each on two cores
def test_four_drivers_one_killed_mid_trial_end_with_exactly_n_trials(url, tmp_path, write_experiment):
    exp, client, marks = write_experiment(EXPERIMENT), write_experiment(CLIENT, "client.py"), tmp_path / "marks"
    marks.mkdir()
    store = tl.Store(url)  # the schema exists before the drivers race to open it
    started = {}

    def start(who, *args):
        started[who] = subprocess.Popen([sys.executable, *args], env={**os.environ, "MARKS": str(marks), "DRIVER": who},
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                        start_new_session=True)

    try:
        for who in ("victim", "d1", "d2", "d3"):
            start(who, "-m", "tuneloop.cli", "run", str(exp), "--trials", str(N), "--storage", url)
        victim = started["victim"]
        number = _wait_for(lambda: _victims_trial(store, victim.pid), "the victim's trial to be running",
                           gone=victim)
        # the others are past their start (where a driver takes over dead drivers' trials) and mid-trial
        _wait_for(lambda: True if {w for r in _ran(marks).values() for _, w in r} >= {"d1", "d2", "d3"} else None,
                  "every other driver to be running a trial")
        for who in ("c1", "c2"):  # two ask/tell clients run theirs meanwhile, the victim's lease live
            start(who, str(client), str(exp), url)
        for who in ("c1", "c2"):
            _, stderr = started[who].communicate(timeout=120)
            assert started[who].returncode == 0, stderr
        os.killpg(victim.pid, signal.SIGKILL)  # the driver and its trial, with no chance to clean up
        victim.communicate()
        (marks / "gate").touch()
        for who in ("d1", "d2", "d3"):
            _, stderr = started[who].communicate(timeout=120)
            assert started[who].returncode == 0, stderr
    finally:
        (marks / "gate").touch()
        for process in started.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.communicate()

    study = store.require_study("shared")
    trials = store.trials(study.id)
    assert [t.number for t in trials] == list(range(N))  # exactly N, none twice, none missing
    assert {t.state for t in trials} == {"completed"} and store.count_finished(study.id) == N
    assert len({(json.dumps(t.params, sort_keys=True), t.seed) for t in trials}) == N  # no configuration twice
    assert len({json.dumps(t.params, sort_keys=True) for t in trials}) == N, [t.params for t in trials]
    assert {t.number: t.attempt for t in trials} == {n: int(n == number) for n in range(N)}
    ran = _ran(marks)
    assert ran[number][0] == (0, "victim") and len(ran[number]) == 2  # killed, then run once more...
    attempt, by = ran[number][1]
    assert attempt == 1 and by != "victim"  # ...by another driver, as attempt 1
    assert all(len(ran[n]) == 1 and ran[n][0][0] == 0 for n in range(N) if n != number)
    assert sorted(w for n in range(N) for _, w in ran[n] if w.startswith("c")) == ["c1", "c1", "c2", "c2"]
    assert store.leases(study.id) == {}
    store.close()


def _plane(trial):
    return {"loss": trial.params.x + trial.params.y}


def test_a_driver_that_is_not_the_studys_first_proposes_configurations_of_its_own(storage, tmp_path):
    """Every driver builds its searcher from the study's seed; one that finds trials it did not run
    (another driver's, or an earlier run's) reseeds, so it does not propose those configurations again."""
    space = tl.Space(x=tl.Float(-2.0, 2.0), y=tl.Float(-2.0, 2.0))
    alone = tl.Study("s", space, _plane, metric="loss", mode="min", storage=f"sqlite:///{tmp_path / 'alone.db'}",
                     searcher="random", seed=3)
    alone.run(6)
    study = tl.Study("s", space, _plane, metric="loss", mode="min", storage=storage, searcher="random", seed=3)
    study.run(3)
    assert [t.params for t in study.trials] == [t.params for t in alone.trials][:3]  # a lone fresh run: the seed's
    study.run(6)  # a second driver (here: a later one) on the same study and seed
    params = [json.dumps(t.params, sort_keys=True) for t in study.trials]
    assert len(set(params)) == 6 and params[3:] != [json.dumps(t.params, sort_keys=True) for t in alone.trials][3:]


class _Recorder(tl.search.Searcher):
    """Random points of the plane; remembers every outcome it is told."""

    def __init__(self):
        import random

        self.rng, self.told = random.Random(0), []

    def ask(self, n=1):
        return [tl.search.Proposal({"x": self.rng.uniform(-2, 2), "y": self.rng.uniform(-2, 2)}, token="mine")]

    def tell(self, outcome):
        self.told.append((outcome.number, outcome.token, str(outcome.state)))


def test_each_driver_learns_from_the_trials_other_drivers_finish(storage, monkeypatch):
    import tuneloop.run.driver as driver

    monkeypatch.setattr(driver, "SYNC_SECONDS", 0.0)  # look before every proposal
    space = tl.Space(x=tl.Float(-2.0, 2.0), y=tl.Float(-2.0, 2.0))
    other = tl.Study("s", space, _plane, metric="loss", mode="min", storage=storage, searcher="random")
    ran = []

    def first_waits_for_another_driver(trial):
        if trial.number == 0:  # while this trial runs, another driver of the study finishes trials of its own
            ran.append(other.run(timeout=0.3).launched)
        return _plane(trial)

    recorder = _Recorder()
    study = tl.Study("s", space, first_waits_for_another_driver, metric="loss", mode="min", storage=storage)
    study.run(2, searcher=recorder)
    others = [n for n, token, state in recorder.told if token is None]
    assert ran[0] >= 1 and sorted(others) == list(range(1, ran[0] + 1))  # every one, told as finished trials
    assert {state for n, token, state in recorder.told if token is None} == {"completed"}


@pytest.mark.parametrize("name", ["random", "sobol", "tpe", "gp", "cmaes"])
def test_a_reseeded_searcher_parts_from_one_built_with_the_same_seed(name):
    from tuneloop.search import searchers

    space = tl.Space(x=tl.Float(0.0, 1.0), y=tl.Float(0.0, 1.0))
    same, reseeded = (searchers.create(name, space=space, seed=1) for _ in range(2))
    assert reseeded.reseed()
    assert same.ask(1)[0].params != reseeded.ask(1)[0].params
    grid = searchers.create({"name": "grid", "steps": 2}, space=space)
    assert not grid.reseed()  # nothing random to change: the driver keeps its proposal


def test_drivers_starting_together_on_a_new_study_share_the_one_created_first(storage):
    """Both read "no such study"; the second's insert loses to the first's and it uses that study."""
    space = tl.Space(x=tl.Float(0.0, 1.0))
    first, second = (tl.Study("s", space, _plane, metric="loss", mode="min", storage=storage) for _ in range(2))
    store = second.store()
    read = store.get_study
    raced = []

    def read_then_lose_the_race(name):
        found = read(name)
        if not raced:  # between this read and the insert, the first driver creates the study
            raced.append(first.record(first.store(), seed=5))
        return found

    store.get_study = read_then_lose_the_race
    assert second.record(store).id == raced[0].id and second.record(store).config["seed"] == 5
