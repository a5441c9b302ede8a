"""``tuneloop idea ...``: the ideas ledger from the shell."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from tuneloop._text import safe
from tuneloop.cli._common import Storage, Workers, open_store, out
from tuneloop.cli._tables import fmt

# the estimates ``add`` asks for and ``edit`` changes, declared once
Hours = Annotated[float | None, typer.Option(help="Estimated hours")]
Complexity = Annotated[int | None, typer.Option(help="1 (trivial) to 5 (much new code)")]
Gain = Annotated[float | None, typer.Option(help="Predicted improvement of the objective if it works")]
Chance = Annotated[float | None, typer.Option("--p", help="Predicted probability that it works")]
Overrides = Annotated[str | None, typer.Option(help="Overrides it makes, NAME=VALUE,...")]
ActualHours = Annotated[float | None, typer.Option(help="Hours it really took")]


def _ledger(storage: str | None, read_only: bool = False) -> Any:
    from tuneloop.ideas import Ledger

    return Ledger(open_store(storage) if read_only else storage)


def _show_idea(idea: Any, tests: list[dict[str, Any]]) -> None:
    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for k, v in (("idea", f"{idea.id}: {idea.title}"), ("state", idea.state), ("estimates",
                 f"{fmt(idea.hours)} h, complexity {idea.complexity}, gain {fmt(idea.gain)}, p {fmt(idea.p)}"),
                 ("priority", fmt(idea.priority)), ("tags", ", ".join(idea.tags) or "-"),
                 ("config", json.dumps(idea.config) if idea.config else "-"), ("actual hours", fmt(idea.actual_hours)),
                 ("note", idea.note or "-"), ("tested in", ", ".join(link.get("study", "?") for link in idea.links) or "-")):
        table.add_row(k, safe(v))  # stored text (an imported ideas file may hold markup)
    out.print(table)
    for t in tests:
        out.print(f"  test on {safe(t['metric'])} over seeds {safe(t['seeds'])}: {safe(t['result']['message'])}",
                  highlight=False)


def add(title: str, hours: Hours = 1.0, complexity: Complexity = 1, gain: Gain = 0.01, p: Chance = 0.2,
        tags: Annotated[str, typer.Option(help="Comma-separated tags")] = "",
        config: Overrides = "", storage: Storage = None) -> None:
    """Propose an idea with its estimates."""
    from tuneloop.ideas import parse_overrides

    idea = _ledger(storage).add(title, hours=hours, complexity=complexity, gain=gain, p=p,
                                tags=[t.strip() for t in tags.split(",") if t.strip()],
                                config=parse_overrides(config, {}) if config else None)
    out.print(f"Added idea {idea.id} (priority {fmt(idea.priority)}).")


def list_(state: Annotated[str | None, typer.Option(help="Only ideas in this state")] = None,
          storage: Storage = None) -> None:
    """Ideas ranked by priority (the formula is printed under the table)."""
    from tuneloop.ideas import PRIORITY_FORMULA

    ideas = _ledger(storage, read_only=True).ideas(state)
    table = Table(title=f"Ideas ({len(ideas)})")
    for col in ("rank", "id", "idea", "state", "hours", "cx", "gain", "p", "priority"):
        table.add_column(col, justify="left" if col in ("idea", "state") else "right", overflow="fold")
    for rank, i in enumerate(ideas, 1):
        table.add_row(str(rank), str(i.id), safe(i.title), safe(i.state), fmt(i.hours), str(i.complexity), fmt(i.gain),
                      fmt(i.p), fmt(i.priority))
    out.print(table)
    out.print(f"[dim]{PRIORITY_FORMULA}[/]")


def show(idea_id: int, storage: Storage = None) -> None:
    """One idea: estimates, state, links, A/B tests and their verdicts."""
    ledger = _ledger(storage, read_only=True)
    _show_idea(ledger.get(idea_id), ledger.tests(idea_id))


def edit(idea_id: int, title: Annotated[str | None, typer.Option()] = None, hours: Hours = None,
         complexity: Complexity = None, gain: Gain = None, p: Chance = None, actual_hours: ActualHours = None,
         config: Overrides = None, storage: Storage = None) -> None:
    """Change an idea's estimates, title, config or actual hours."""
    from tuneloop.ideas import parse_overrides

    idea = _ledger(storage).edit(idea_id, title=title, hours=hours, complexity=complexity, gain=gain, p=p,
                                 actual_hours=actual_hours, config=parse_overrides(config, {}) if config else None)
    out.print(f"Idea {idea.id} now has priority {fmt(idea.priority)}.")


def start(idea_id: int, storage: Storage = None) -> None:
    """Mark an idea as being tested."""
    out.print(f"Idea {_ledger(storage).start(idea_id).id} is now testing.")


def decide(idea_id: int, decision: Annotated[str, typer.Argument(help="adopt, reject or park")],
           note: Annotated[str | None, typer.Option(help="Why: the evidence")] = None,
           actual_hours: ActualHours = None, storage: Storage = None) -> None:
    """Record the decision; adopting makes the idea's overrides part of the baseline."""
    idea = _ledger(storage).decide(idea_id, decision, note=note, actual_hours=actual_hours)
    out.print(f"Idea {idea.id} is {idea.state}.")


def test(idea_id: int, file: Annotated[Path, typer.Argument(help="The experiment file whose study is the baseline")],
         variant: Annotated[str, typer.Option(help="NAME=VALUE,... overrides, or a variant experiment file")] = "",
         seeds: Annotated[int, typer.Option(help="Seeds per arm (paired)")] = 3,
         workers: Workers = 1, storage: Storage = None) -> None:
    """A/B test an idea: baseline and variant over the same seeds, then effect, 95% CI, p and verdict."""
    from tuneloop.experiment import load_study
    from tuneloop.ideas import ab_test, parse_overrides

    study = load_study(file)
    if storage:
        study.storage = storage
    variant_fn, overrides = None, None
    if variant.endswith(".py"):
        variant_fn = load_study(variant).fn
    elif variant:
        overrides = parse_overrides(variant, study.best.params)
    result = ab_test(_ledger(storage or study.storage), idea_id, study, overrides=overrides, variant_fn=variant_fn,
                     seeds=seeds, workers=workers, storage=storage)
    colour = {"better": "green", "worse": "red"}.get(result.verdict, "yellow")
    out.print(f"[{colour}]{safe(result.message)}[/]", highlight=False)
    out.print(f"Stored with idea {idea_id}. Decide with: tuneloop idea decide {idea_id} adopt|reject|park --note ...")


def chain(storage: Storage = None) -> None:
    """The baseline's history: adopted ideas in order, with the cumulative measured gain."""
    table = Table(title="Baseline history")
    for col in ("#", "idea", "effect", "cumulative", "overrides"):
        table.add_column(col, justify="left" if col in ("idea", "overrides") else "right", overflow="fold")
    for n, step in enumerate(_ledger(storage).baseline_chain(), 1):
        table.add_row(str(n), safe(f"{step['id']}: {step['title']}"), fmt(step["effect"]), fmt(step["cumulative"]),
                      safe(json.dumps(step["config"])) if step["config"] else "-")
    out.print(table)


def calibration_cmd(storage: Storage = None) -> None:
    """How good the predictions were: Brier score, base rate, predicted vs realized gain and hours."""
    from tuneloop.ideas import calibration
    from tuneloop.views import latest_tests, measured_effects

    ledger = _ledger(storage)
    ideas = ledger.ideas()
    c = calibration(ideas, measured_effects(latest_tests(ledger, ideas)))
    if not c.decided:
        out.print("No decided ideas yet: adopt or reject some (tuneloop idea decide ID adopt|reject).")
        return
    out.print(f"{c.decided} decided ideas; success base rate {fmt(c.base_rate)}")
    out.print(f"Brier score {fmt(c.brier)} (always predicting the base rate: {fmt(c.brier_base_rate)}; lower is better)")
    out.print(f"gain predicted {fmt(c.gain_predicted)} vs realized {fmt(c.gain_realized)}; "
              f"actual / estimated hours {fmt(c.hours_ratio)}")


def seed_catalog(storage: Storage = None) -> None:
    """Add the standard ideas (optimizer, warmup, weight decay, dropout, ...) with default estimates."""
    from tuneloop.ideas import CATALOG

    ledger = _ledger(storage)
    for item in CATALOG:
        ledger.add(item["title"], hours=item["hours"], complexity=item["complexity"], gain=item["gain"], p=item["p"],
                   tags=item.get("tags"), config=item.get("config"))
    out.print(f"Added {len(CATALOG)} standard ideas; edit their estimates with tuneloop idea edit ID.")


def export_cmd(output: Annotated[Path | None, typer.Option("--output", "-o")] = None, storage: Storage = None) -> None:
    """Every idea as YAML."""
    from tuneloop.ideas import export_yaml

    text = export_yaml(_ledger(storage))
    if output:
        output.write_text(text)
    else:
        typer.echo(text)


def import_cmd(file: Path, storage: Storage = None) -> None:
    """Add the ideas of a YAML file (as tuneloop idea export writes it)."""
    from tuneloop.ideas import import_yaml

    out.print(f"Imported {import_yaml(_ledger(storage), file)} ideas.")


def register(app: typer.Typer) -> None:
    idea_app = typer.Typer(no_args_is_help=True,
                           help="The ideas ledger: estimate, rank, test over seeds, decide, calibrate.")
    for name, command in (("add", add), ("list", list_), ("show", show), ("edit", edit), ("start", start),
                          ("decide", decide), ("test", test), ("chain", chain), ("calibration", calibration_cmd),
                          ("seed-catalog", seed_catalog), ("export", export_cmd), ("import", import_cmd)):
        idea_app.command(name)(command)
    app.add_typer(idea_app, name="idea")
