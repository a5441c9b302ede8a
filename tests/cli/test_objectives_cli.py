"""Several objectives and constraints through the CLI: `run` says what it optimizes and what its
scheduler judges, `best` lists the Pareto front, `trials`/`show` mark infeasible trials, `status`
gives the front's size, `export` carries every objective and `tell` takes them all. The objective's
name is markup and the latency's is not ASCII: both must print as they read."""

import csv
import io
import json

import pytest
from typer.testing import CliRunner

from tuneloop.cli import app
from tuneloop.store import Store

ACC, LAT = "[red]acc[/red]", "λ_ms"

EXPERIMENT = """
    import tuneloop as tl

    space = tl.Space(width=tl.Int(4, 256, log=True), lr=tl.LogFloat(1e-3, 1e-1))

    def train(trial):
        w, lr = trial.params.width, trial.params.lr
        acc = 1 - 1 / (1 + w / 16) - abs(lr - 0.01)
        for epoch in range(3):
            trial.report(epoch, **{ACC: acc * (epoch + 1) / 3})
        return {ACC: acc, LAT: w / 50, "params_m": w * w / 20000}

    study = tl.Study("mo", space, train, objectives={ACC: "max", LAT: "min"},
                     constraints={LAT: ("<=", 2.0), "params_m": ("<=", 1.0)}, scheduler="asha",
                     searcher="random", seed=0, executor="inline")
"""

SINGLE = """
    import tuneloop as tl

    def train(trial):
        return {"loss": -trial.params.w, "latency_ms": trial.params.w / 50}

    study = tl.Study("one", tl.Space(w=tl.Int(4, 256, log=True)), train, metric="loss", mode="min",
                     constraints={"latency_ms": ("<=", BOUND)}, searcher="random", seed=0, executor="inline")
"""


@pytest.fixture
def cli(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TUNELOOP_STORAGE", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("COLUMNS", "240")  # table rows on one line each
    runner = CliRunner()

    def invoke(*args):
        result = runner.invoke(app, [str(a) for a in args])
        assert "MarkupError" not in result.output and "\x1b" not in result.output
        return result

    return invoke


def _experiment(write_experiment, source=EXPERIMENT, file="exp.py", **names):
    names = {"ACC": repr(ACC), "LAT": repr(LAT), **names}
    for key, value in names.items():
        source = source.replace(key, value)
    return write_experiment(source, name=file)


def _numbers(output: str) -> list[int]:
    """The trial numbers of a table's rows, in order."""
    cells = [line.split("│")[1].strip() for line in output.splitlines() if line.startswith("│")]
    return [int(c) for c in cells if c.isdigit()]


def test_run_best_trials_show_status_and_export_carry_every_objective(cli, write_experiment, tmp_path):
    ran = cli("run", _experiment(write_experiment), "--trials", 12)
    assert ran.exit_code == 0, ran.output
    assert f"Objectives: max {ACC}, min {LAT}; subject to {LAT} <= 2, params_m <= 1" in ran.output
    assert f"asha judges trials on {ACC} (max), the first objective" in ran.output
    store = Store(str(tmp_path / "cli.db"), read_only=True)
    record = store.require_study("mo")
    objectives, trials = record.objectives, store.trials(record.id)
    front = objectives.front(trials)
    infeasible = [t for t in objectives.completed(trials) if not objectives.feasible(t.values)]
    assert len(front) >= 2 and infeasible
    by_acc = [t.number for t in sorted(front, key=lambda t: -t.values[ACC])]
    assert _numbers(ran.output.split("Pareto front of mo")[1]) == by_acc  # print_best: the front, best first

    best = cli("best", "mo")
    assert best.exit_code == 0 and f"{ACC} (max)" in best.output and f"{LAT} (min)" in best.output
    assert _numbers(best.output) == by_acc
    assert f"{len(infeasible)} of {len(objectives.completed(trials))} completed trials are infeasible" in best.output
    data = json.loads(cli("best", "mo", "--json").output)
    assert [t["number"] for t in data["front"]] == by_acc and data["infeasible"] == len(infeasible)
    assert data["objectives"] == [{"name": ACC, "direction": "max"}, {"name": LAT, "direction": "min"}]

    listed = cli("trials", "mo", "--sort", "value")
    assert listed.exit_code == 0 and "feasible" in listed.output
    ranked = [t.number for t in objectives.ranked(trials)]
    assert _numbers(listed.output)[:len(ranked)] == ranked  # feasible first: the front, then by layer
    bad = infeasible[0]
    broken = f"no: {LAT} {bad.values[LAT]:.4g} > 2" if bad.values[LAT] > 2 else "no: params_m"
    assert broken in listed.output
    shown = cli("show", "mo", bad.number)
    assert shown.exit_code == 0 and f"{LAT} = {bad.values[LAT]:.4g}" in shown.output
    assert f"feasible: {broken}" in shown.output
    status = cli("status")
    assert f"front of {len(front)}" in status.output and f"max {ACC}, min {LAT}" in status.output

    exported = json.loads(cli("export", "mo").output)
    assert exported["study"]["objectives"] == data["objectives"] and exported["study"]["prune_on"] == ACC
    assert exported["study"]["constraints"][0] == {"metric": LAT, "op": "<=", "bound": 2.0}
    rows = {t["number"]: t for t in exported["trials"]}
    assert rows[bad.number]["feasible"] is False and {n for n, t in rows.items() if t["on_front"]} == set(by_acc)
    table = list(csv.DictReader(io.StringIO(cli("export", "mo", "-f", "csv").output)))
    assert {f"value.{ACC}", f"value.{LAT}", "feasible"} <= set(table[0])
    assert {r["number"]: r["feasible"] for r in table}[str(bad.number)] == "no"


def test_tell_takes_every_objective_and_names_a_missing_one(cli, write_experiment):
    exp = _experiment(write_experiment)
    asked = cli("ask", "mo", "--file", exp)
    assert asked.exit_code == 0 and f"--metric {ACC}=V --metric {LAT}=V" in asked.output
    number = json.loads(cli("ask", "mo", "--json").output)["number"]
    missing = cli("tell", "mo", number, "--metric", f"{ACC}=0.9")
    assert missing.exit_code == 1 and f"needs its objective {LAT!r}" in missing.output
    told = cli("tell", "mo", number, "--metric", f"{ACC}=0.9", "--metric", f"{LAT}=3", "--metric", "params_m=0.5")
    assert told.exit_code == 0, told.output
    assert f"completed ({ACC} 0.9, {LAT} 3; feasible: no: {LAT} 3 > 2)" in told.output


def test_a_constrained_study_s_best_is_its_best_feasible_trial(cli, write_experiment, tmp_path):
    assert cli("run", _experiment(write_experiment, SINGLE, BOUND="2.0"), "--trials", 8).exit_code == 0
    store = Store(str(tmp_path / "cli.db"), read_only=True)
    trials = store.trials(store.require_study("one").id)
    feasible = [t for t in trials if t.values["latency_ms"] <= 2.0]
    assert feasible and len(feasible) < len(trials)
    best = json.loads(cli("best", "one", "--json").output)
    assert best["value"] == min(t.value for t in feasible) > min(t.value for t in trials)
    assert "infeasible" in cli("best", "one").output
    (row,) = [line for line in cli("status").output.splitlines() if line.startswith("│ one")]
    assert "min loss; subject to latency_ms <= 2" in row and f" {best['value']:.4g} " in row  # the best feasible

    assert cli("run", _experiment(write_experiment, SINGLE.replace('"one"', '"none"'), "none.py", BOUND="0.0"),
               "--trials", 2).exit_code == 0
    none = cli("best", "none")
    assert none.exit_code == 1 and "has no feasible trial yet" in none.output
    assert len(none.output.strip().splitlines()) == 1
