"""``tuneloop idea ...``: the ideas ledger from the shell."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from tuneloop._tables import fmt

idea_app = typer.Typer(no_args_is_help=True, help="The ideas ledger: estimate, rank, test over seeds, decide, calibrate.")
out = Console()
Storage = Annotated[str | None, typer.Option("--storage", help="Database URL or SQLite path")]


def _ledger(storage: str | None) -> Any:
    from tuneloop.ideas import Ledger

    return Ledger(storage)


def _show_idea(idea: Any, tests: list[dict[str, Any]]) -> None:
    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for k, v in (("idea", f"{idea.id}: {idea.title}"), ("state", idea.state), ("estimates",
                 f"{fmt(idea.hours)} h, complexity {idea.complexity}, gain {fmt(idea.gain)}, p {fmt(idea.p)}"),
                 ("priority", fmt(idea.priority)), ("tags", ", ".join(idea.tags) or "-"),
                 ("config", json.dumps(idea.config) if idea.config else "-"), ("actual hours", fmt(idea.actual_hours)),
                 ("note", idea.note or "-"), ("tested in", ", ".join(link.get("study", "?") for link in idea.links) or "-")):
        table.add_row(k, str(v))
    out.print(table)
    for t in tests:
        out.print(f"  test on {t['metric']} over seeds {t['seeds']}: {t['result']['message']}", highlight=False)


@idea_app.command("add")
def add(title: str, hours: Annotated[float, typer.Option(help="Estimated hours")] = 1.0,
        complexity: Annotated[int, typer.Option(help="1 (trivial) to 5 (much new code)")] = 1,
        gain: Annotated[float, typer.Option(help="Predicted improvement of the objective if it works")] = 0.01,
        p: Annotated[float, typer.Option("--p", help="Predicted probability that it works")] = 0.2,
        tags: Annotated[str, typer.Option(help="Comma-separated tags")] = "",
        config: Annotated[str, typer.Option(help="Overrides it makes, NAME=VALUE,...")] = "",
        storage: Storage = None) -> None:
    """Propose an idea with its estimates."""
    from tuneloop.ideas import parse_overrides

    idea = _ledger(storage).add(title, hours=hours, complexity=complexity, gain=gain, p=p,
                                tags=[t.strip() for t in tags.split(",") if t.strip()],
                                config=parse_overrides(config, {}) if config else None)
    out.print(f"Added idea {idea.id} (priority {fmt(idea.priority)}).")


@idea_app.command("list")
def list_(state: Annotated[str | None, typer.Option(help="Only ideas in this state")] = None,
          storage: Storage = None) -> None:
    """Ideas ranked by priority (the formula is printed under the table)."""
    from tuneloop.ideas import PRIORITY_FORMULA

    ideas = _ledger(storage).ideas(state)
    table = Table(title=f"Ideas ({len(ideas)})")
    for col in ("rank", "id", "idea", "state", "hours", "cx", "gain", "p", "priority"):
        table.add_column(col, justify="left" if col in ("idea", "state") else "right", overflow="fold")
    for rank, i in enumerate(ideas, 1):
        table.add_row(str(rank), str(i.id), i.title, i.state, fmt(i.hours), str(i.complexity), fmt(i.gain), fmt(i.p),
                      fmt(i.priority))
    out.print(table)
    out.print(f"[dim]{PRIORITY_FORMULA}[/]")


@idea_app.command("show")
def show(idea_id: int, storage: Storage = None) -> None:
    """One idea: estimates, state, links, A/B tests and their verdicts."""
    ledger = _ledger(storage)
    _show_idea(ledger.get(idea_id), ledger.tests(idea_id))


@idea_app.command("edit")
def edit(idea_id: int, title: Annotated[str | None, typer.Option()] = None,
         hours: Annotated[float | None, typer.Option()] = None, complexity: Annotated[int | None, typer.Option()] = None,
         gain: Annotated[float | None, typer.Option()] = None, p: Annotated[float | None, typer.Option("--p")] = None,
         actual_hours: Annotated[float | None, typer.Option()] = None,
         config: Annotated[str | None, typer.Option(help="Overrides it makes, NAME=VALUE,...")] = None,
         storage: Storage = None) -> None:
    """Change an idea's estimates, title, config or actual hours."""
    from tuneloop.ideas import parse_overrides

    idea = _ledger(storage).edit(idea_id, title=title, hours=hours, complexity=complexity, gain=gain, p=p,
                                 actual_hours=actual_hours, config=parse_overrides(config, {}) if config else None)
    out.print(f"Idea {idea.id} now has priority {fmt(idea.priority)}.")


@idea_app.command("start")
def start(idea_id: int, storage: Storage = None) -> None:
    """Mark an idea as being tested."""
    out.print(f"Idea {_ledger(storage).start(idea_id).id} is now testing.")


@idea_app.command("decide")
def decide(idea_id: int, decision: Annotated[str, typer.Argument(help="adopt, reject or park")],
           note: Annotated[str | None, typer.Option(help="Why: the evidence")] = None,
           actual_hours: Annotated[float | None, typer.Option(help="Hours it really took")] = None,
           storage: Storage = None) -> None:
    """Record the decision; adopting makes the idea's overrides part of the baseline."""
    idea = _ledger(storage).decide(idea_id, decision, note=note, actual_hours=actual_hours)
    out.print(f"Idea {idea.id} is {idea.state}.")


@idea_app.command("test")
def test(idea_id: int, file: Annotated[Path, typer.Argument(help="The experiment file whose study is the baseline")],
         variant: Annotated[str, typer.Option(help="NAME=VALUE,... overrides, or a variant experiment file")] = "",
         seeds: Annotated[int, typer.Option(help="Seeds per arm (paired)")] = 3,
         workers: Annotated[int, typer.Option(help="Trials at once")] = 1, storage: Storage = None) -> None:
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
    out.print(f"[{colour}]{result.message}[/]", highlight=False)
    out.print(f"Stored with idea {idea_id}. Decide with: tuneloop idea decide {idea_id} adopt|reject|park --note ...")


@idea_app.command("chain")
def chain(storage: Storage = None) -> None:
    """The baseline's history: adopted ideas in order, with the cumulative measured gain."""
    table = Table(title="Baseline history")
    for col in ("#", "idea", "effect", "cumulative", "overrides"):
        table.add_column(col, justify="left" if col in ("idea", "overrides") else "right", overflow="fold")
    for n, step in enumerate(_ledger(storage).baseline_chain(), 1):
        table.add_row(str(n), f"{step['id']}: {step['title']}", fmt(step["effect"]), fmt(step["cumulative"]),
                      json.dumps(step["config"]) if step["config"] else "-")
    out.print(table)


@idea_app.command("calibration")
def calibration_cmd(storage: Storage = None) -> None:
    """How good the predictions were: Brier score, base rate, predicted vs realized gain and hours."""
    from tuneloop.ideas import calibration

    ledger = _ledger(storage)
    ideas = ledger.ideas()
    effects = {i.id: t[-1]["result"]["effect"] for i in ideas if (t := ledger.tests(i.id))}
    c = calibration(ideas, effects)
    if not c.decided:
        out.print("No decided ideas yet: adopt or reject some (tuneloop idea decide ID adopt|reject).")
        return
    out.print(f"{c.decided} decided ideas; success base rate {fmt(c.base_rate)}")
    out.print(f"Brier score {fmt(c.brier)} (always predicting the base rate: {fmt(c.brier_base_rate)}; lower is better)")
    out.print(f"gain predicted {fmt(c.gain_predicted)} vs realized {fmt(c.gain_realized)}; "
              f"actual / estimated hours {fmt(c.hours_ratio)}")


@idea_app.command("seed-catalog")
def seed_catalog(storage: Storage = None) -> None:
    """Add the standard ideas (optimizer, warmup, weight decay, dropout, ...) with default estimates."""
    from tuneloop.ideas import CATALOG

    ledger = _ledger(storage)
    for item in CATALOG:
        ledger.add(item["title"], hours=item["hours"], complexity=item["complexity"], gain=item["gain"], p=item["p"],
                   tags=item.get("tags"), config=item.get("config"))
    out.print(f"Added {len(CATALOG)} standard ideas; edit their estimates with tuneloop idea edit ID.")


@idea_app.command("export")
def export_cmd(output: Annotated[Path | None, typer.Option("--output", "-o")] = None, storage: Storage = None) -> None:
    """Every idea as YAML."""
    from tuneloop.ideas import export_yaml

    text = export_yaml(_ledger(storage))
    if output:
        output.write_text(text)
    else:
        typer.echo(text)


@idea_app.command("import")
def import_cmd(file: Path, storage: Storage = None) -> None:
    """Add the ideas of a YAML file (as tuneloop idea export writes it)."""
    from tuneloop.ideas import import_yaml

    out.print(f"Imported {import_yaml(_ledger(storage), file)} ideas.")
