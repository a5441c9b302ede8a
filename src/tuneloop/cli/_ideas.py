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
                 ("note", idea.note or "-"),
                 ("tested in", ", ".join(str(link["study"]) for link in idea.links if "study" in link) or "-")):
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


def _check_rule(ctx: typer.Context, value: str | None) -> str | None:
    """Reads ``--adopt-if`` while the arguments are parsed, so ``queue add idea-test ... --adopt-if`` refuses
    a bad rule when the job is queued. Parsed on its own (``queue add`` parses the job's arguments with no
    parent command), the ConfigError is its one-line answer; within ``idea test`` the command reads the rule
    again first thing, where the error is said in one line like every other."""
    from tuneloop.ideas import AdoptRule

    if value is not None and ctx.parent is None:
        AdoptRule.parse(value)
    return value


AdoptIf = Annotated[str | None, typer.Option(
    "--adopt-if", callback=_check_rule,
    help="Adopt the idea when the verdict satisfies this rule, e.g. 'better and p < 0.01' (terms: better, worse, "
         "inconclusive, p/effect/low/high < <= > >= NUMBER, joined by and/or); without one nothing is adopted")]


def _find_checks(file: Path | str) -> Any:
    """The tl.Checks an experiment file defines, or None (torch is imported only if the file did)."""
    import sys

    from tuneloop.experiment import load_module

    module = load_module(file)
    kind = getattr(sys.modules.get("tuneloop.checks._run"), "Checks", None)
    return next((v for v in vars(module).values() if kind is not None and isinstance(v, kind)), None)


def test(idea_id: int, file: Annotated[Path, typer.Argument(help="The experiment file whose study is the baseline")],
         variant: Annotated[str, typer.Option(help="NAME=VALUE,... overrides, or a variant experiment file")] = "",
         seeds: Annotated[int, typer.Option(help="Seeds per arm (paired)")] = 3,
         workers: Workers = 1,
         checks: Annotated[bool, typer.Option(help="Run the check ladder on the variant first (its file's "
                                              "tl.Checks, else the baseline file's with the overrides)")] = True,
         adopt_if: AdoptIf = None, storage: Storage = None) -> None:
    """A/B test an idea: the variant's check ladder first, then baseline and variant over the same seeds:
    effect, 95% CI, p and verdict; adopted when --adopt-if holds."""
    from tuneloop.experiment import load_study
    from tuneloop.ideas import AdoptRule, VariantBroken, ab_test, parse_overrides

    rule = AdoptRule.parse(adopt_if) if adopt_if is not None else None  # before anything runs
    study = load_study(file)
    if storage:
        study.storage = storage
    ledger = _ledger(storage or study.storage)
    variant_fn, overrides, ladder = None, None, None
    if variant.endswith(".py"):
        variant_fn = load_study(variant).fn
    elif variant:
        overrides = parse_overrides(variant, study.best.params)
    if checks:
        ladder = _variant_checks(ledger, idea_id, study, file, variant if variant_fn else None, overrides)
    try:
        result = ab_test(ledger, idea_id, study, overrides=overrides, variant_fn=variant_fn, seeds=seeds,
                         workers=workers, storage=storage, checks=ladder, on_check=_print_rung, adopt_if=rule)
    except VariantBroken as broken:
        kept = " (the idea stays adopted: its baseline is unchanged)" if broken.idea.state == "adopted" else ""
        out.print(f"[red]Idea {idea_id} is broken[/]: its variant failed {safe(repr(broken.report.failure.name))}; "
                  f"the A/B test did not run{kept}. Fix it, then test it again (tuneloop idea test {idea_id} ...).",
                  highlight=False)
        raise typer.Exit(1) from None
    colour = {"better": "green", "worse": "red"}.get(result.verdict, "yellow")
    out.print(f"[{colour}]{safe(result.message)}[/]", highlight=False)
    if rule is not None and rule.holds(result):  # what ab_test decided by (an earlier adoption's note is no proof)
        out.print(f"[green]Adopted idea {idea_id}[/] by rule {safe(repr(rule.text))}: its overrides are now part of "
                  f"the baseline.", highlight=False)
        if variant_fn is not None:
            out.print("Its variant file is not part of the baseline (only overrides are): make the change in the "
                      "experiment file.")
    elif rule is not None:
        out.print(f"Rule {safe(repr(rule.text))} does not hold: idea {idea_id} is not adopted.", highlight=False)
    out.print(f"Stored with idea {idea_id}. Decide with: tuneloop idea decide {idea_id} adopt|reject|park --note ...")


def _print_rung(result: Any) -> None:
    from tuneloop.cli._checks import _print_result

    _print_result(result)


def _variant_checks(ledger: Any, idea_id: int, study: Any, file: Path, variant_file: str | None,
                    overrides: dict[str, Any] | None) -> Any:
    """The ladder the variant runs first: the variant file's own tl.Checks, else the baseline file's made
    for the variant's configuration; None (said in one line) when neither file defines one."""
    from tuneloop.ideas import arms_config

    own = _find_checks(variant_file) if variant_file else None
    base = own if own is not None else _find_checks(file)
    if base is None:
        named = f"{file} or {variant_file}" if variant_file else str(file)
        out.print(f"No check ladder: {safe(named)} defines no tl.Checks, so the A/B test runs without one.",
                  highlight=False)
        return None
    _, config, changes = arms_config(ledger, idea_id, study, overrides)
    out.print(f"Checking the variant first ({'its own' if own is not None else 'the baseline'} check ladder):",
              highlight=False)
    return base.for_config(config, {} if own is not None else changes)


TITLE_WIDTH = 60  # a plan's rows and reasons show this much of a title (an imported one may be 10k characters)


def _title(idea: Any) -> str:
    text = " ".join(str(idea.title).split())
    return safe(text if len(text) <= TITLE_WIDTH else text[:TITLE_WIDTH - 1] + "…")


def plan(file: Annotated[Path, typer.Argument(help="The experiment file whose study is the baseline")],
         hours: Annotated[float, typer.Option(help="Machine hours in the window to fill")],
         seeds: Annotated[int, typer.Option(help="Seeds per arm of each A/B test")] = 3,
         workers: Workers = 1,
         queue: Annotated[bool, typer.Option("--queue", help="Queue each planned idea as a signed idea-test job, "
                                             "in the plan's order")] = False,
         adopt_if: AdoptIf = None, storage: Storage = None) -> None:
    """Plan the night: fill HOURS of machine time with the ledger's testable ideas, the most expected gain
    per machine hour first; --queue queues them as idea-test jobs."""
    from tuneloop.experiment import load_study
    from tuneloop.ideas import AdoptRule, job_args, plan_night
    from tuneloop.ideas._plan import machine_time
    from tuneloop.queue import enqueue, prepare

    rule = AdoptRule.parse(adopt_if) if adopt_if is not None else None
    study = load_study(file)
    url = storage or study.storage
    path = prepare("idea-test", ["0", str(file)])[1]  # the path a queued job names: the estimate finds the study by it
    with open_store(url, read_only=not queue) as store:
        the_plan = plan_night(_ledger(store), store, path, study_name=study.name, hours=hours, seeds=seeds,
                              workers=workers)
        _print_plan(the_plan, machine_time)
        if queue and the_plan.planned:
            for e in the_plan.planned:
                job, _ = enqueue(store, "idea-test", job_args(e.idea.id, path, seeds, workers,
                                                              rule.text if rule else None))
                out.print(f"Queued job {job.id}: idea {e.idea.id} ({_title(e.idea)}).", highlight=False)
            out.print("Run the queue with tuneloop queue run --hours ...")


def _print_plan(the_plan: Any, duration: Any) -> None:
    table = Table(title=f"The night's plan: {fmt(the_plan.hours)} machine hours, {the_plan.seeds} seeds per arm, "
                        f"{the_plan.workers} worker(s)")
    for col in ("#", "id", "idea", "p", "gain", "your h", "machine", "gain / machine h"):
        table.add_column(col, justify="left" if col == "idea" else "right", overflow="fold")
    for n, e in enumerate(the_plan.planned, 1):
        table.add_row(str(n), str(e.idea.id), _title(e.idea), fmt(e.idea.p), fmt(e.idea.gain), fmt(e.idea.hours),
                      "unknown" if e.seconds is None else duration(e.seconds), fmt(e.per_hour))
    out.print(table)
    unknown = f" (+ {the_plan.unknown} with an unknown estimate: no history yet)" if the_plan.unknown else ""
    out.print(f"Planned {len(the_plan.planned)} ideas: {duration(the_plan.planned_hours * 3600)} of machine time in "
              f"a window of {fmt(the_plan.hours)} h{unknown}. 'your h' is your estimate of the work, not machine time.",
              highlight=False)
    for e in the_plan.left_out:
        out.print(f"Left out: idea {e.idea.id} ({_title(e.idea)}): {safe(e.reason)}", highlight=False)
    for idea, why in the_plan.untestable:
        out.print(f"Not testable automatically: idea {idea.id} ({_title(idea)}): {safe(why)}", highlight=False)


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
    broken = (f"{c.broken} broken ideas (their variant failed the check ladder) are not scored: a broken "
              f"implementation says nothing about the idea.") if c.broken else None
    if not c.decided:
        out.print("No decided ideas yet: adopt or reject some (tuneloop idea decide ID adopt|reject).")
        if broken:
            out.print(broken)
        return
    out.print(f"{c.decided} decided ideas; success base rate {fmt(c.base_rate)}")
    out.print(f"Brier score {fmt(c.brier)} (always predicting the base rate: {fmt(c.brier_base_rate)}; lower is better)")
    out.print(f"gain predicted {fmt(c.gain_predicted)} vs realized {fmt(c.gain_realized)}; "
              f"actual / estimated hours {fmt(c.hours_ratio)}")
    if broken:
        out.print(broken)


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
                          ("decide", decide), ("test", test), ("plan", plan), ("chain", chain), ("calibration", calibration_cmd),
                          ("seed-catalog", seed_catalog), ("export", export_cmd), ("import", import_cmd)):
        idea_app.command(name)(command)
    app.add_typer(idea_app, name="idea")
