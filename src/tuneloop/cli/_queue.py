"""``tuneloop queue ...``: queue tuneloop commands in the store and run them one after another."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from tuneloop._text import safe
from tuneloop.cli._common import Storage, err, open_store, out
from tuneloop.errors import ConfigError

STALE_AFTER = 180.0  # tuneloop.store._jobs.STALE_AFTER (not imported: the command line starts without the store)

JobId = Annotated[int, typer.Argument(help="The job's id (tuneloop queue list shows them)")]


def add(
    kind: Annotated[str, typer.Argument(help="run, idea-test, finalize, probe or check")],
    args: Annotated[list[str] | None, typer.Argument(help="The command's arguments: FILE (or STUDY, ID FILE, lr FILE) "
                                                     "first, then its options, e.g. exp.py --trials 20")] = None,
    title: Annotated[str | None, typer.Option(help="What the queue lists it as \\[default: its command]")] = None,
    storage: Storage = None,
) -> None:
    """Queue a job: a tuneloop command the runner will run (run, idea test, finalize, probe, check), signed
    with this user's key so that only jobs queued here ever run."""
    from tuneloop.queue import duration, enqueue, kind_of, prepare

    kind_of(kind)
    _parse(kind, prepare(kind, list(args or ())))  # as the job's own command will parse them, before anything is stored
    with open_store(storage, read_only=False) as store:
        job, expected = enqueue(store, kind, list(args or ()), title)
    when = "unknown (no history yet)" if expected is None else duration(expected)
    out.print(f"Queued job {job.id}: {safe(job.title)} (estimate {when}). Run the queue with tuneloop queue run.",
              highlight=False)


def _parse(kind: str, args: list[str]) -> None:
    """Parse ``args`` as the job's own command will, so a misspelt option fails now, not at night."""
    from typer.main import get_command

    from tuneloop.cli import app
    from tuneloop.queue import kind_of

    cmd: Any = get_command(app)
    path, rest = list(kind_of(kind).command), list(args)
    while hasattr(cmd, "commands"):  # a group (typer bundles its own click: its classes are not click's)
        name = path.pop(0) if path else rest.pop(0) if rest else None
        if name is None or name not in cmd.commands:
            raise ConfigError(f"A {kind} job needs the command's arguments; see tuneloop queue add --help.")
        cmd = cmd.commands[name]
    try:
        cmd.make_context(cmd.name, rest)
    except Exception as exc:  # click's usage errors (whichever click), said in one line
        message = getattr(exc, "format_message", None)
        if not callable(message):
            raise
        name = " ".join(kind_of(kind).command)
        raise ConfigError(f"Bad arguments for a {kind} job: {str(message()).rstrip('.')}; see tuneloop {name} "
                          f"--help.") from None


def list_(
    every: Annotated[bool, typer.Option("--all", help="Removed jobs too")] = False,
    storage: Storage = None,
) -> None:
    """The queue in order: what runs next first, then what ran."""
    from tuneloop.queue import duration
    from tuneloop.store import JobState

    with open_store(storage) as store:
        jobs, paused = store.jobs(), store.queue_paused()
    shown = [j for j in jobs if every or j.state is not JobState.REMOVED]
    table = Table(title=f"Queue ({sum(j.state is JobState.QUEUED for j in jobs)} queued)")
    for col in ("#", "id", "kind", "args", "state", "estimate", "reason", "attempts"):
        table.add_column(col, justify="right" if col in ("#", "id", "attempts") else "left", overflow="fold")
    rank = 0
    for j in shown:
        queued = j.state is JobState.QUEUED
        rank += queued
        args = " ".join(Path(a).name if a in j.files else a for a in j.args)
        state = f"{j.state} (paused)" if queued and j.paused else str(j.state)
        if j.state in (JobState.DONE, JobState.FAILED) and j.exit_code is not None:
            state += f" ({j.exit_code})"
        table.add_row(str(rank) if queued else "-", str(j.id), safe(j.kind), safe(args), safe(state),
                      "-" if j.estimate_s is None else duration(j.estimate_s), safe(j.reason or "-"), str(j.attempts))
    out.print(table)
    if paused:
        out.print("[yellow]The queue is paused[/]: no runner starts a job until tuneloop queue resume.")


def show(job_id: JobId, storage: Storage = None) -> None:
    """One job: its command, state, reason and the last lines of its output."""
    with open_store(storage) as store:
        j = store.job(job_id)
    out.print(f"job {j.id}: {safe(j.title)} ({safe(j.state)}, attempts {j.attempts})", highlight=False)
    out.print(f"args: {safe(' '.join(j.args))}", highlight=False)
    if j.reason:
        out.print(f"reason: {safe(j.reason)}", highlight=False)
    if j.tail:
        out.print(safe(j.tail, lines=True), highlight=False)


def remove(job_id: JobId, storage: Storage = None) -> None:
    """Take a job off the queue (a running job cannot be removed while its runner lives; one whose runner
    died can)."""
    with open_store(storage, read_only=False) as store:
        store.remove_job(job_id)
    out.print(f"Removed job {job_id}.")


def move(
    job_id: JobId,
    to: Annotated[int | None, typer.Option("--to", help="Its place among the queued jobs (1: next)")] = None,
    before: Annotated[int | None, typer.Option("--before", help="Just before this queued job")] = None,
    storage: Storage = None,
) -> None:
    """Reorder the queue: move a queued job to a place, or before another job."""
    with open_store(storage, read_only=False) as store:
        store.move_job(job_id, to=to, before=before)
        queued = [j.id for j in store.jobs(["queued"])]
    out.print(f"Job {job_id} is now number {queued.index(job_id) + 1} of {len(queued)} queued.")


def pause(job_id: Annotated[int | None, typer.Argument(help="Only this queued job")] = None,
          storage: Storage = None) -> None:
    """Pause the queue (runners start no new job; a running one finishes), or hold one queued job."""
    with open_store(storage, read_only=False) as store:
        if job_id is None:
            store.pause_queue(True)
        else:
            store.pause_job(job_id, True)
    out.print("The queue is paused." if job_id is None else f"Job {job_id} is held until tuneloop queue resume {job_id}.")


def resume(job_id: Annotated[int | None, typer.Argument(help="Only this held job")] = None,
           storage: Storage = None) -> None:
    """Resume the queue, or let a held job run again."""
    with open_store(storage, read_only=False) as store:
        if job_id is None:
            store.pause_queue(False)
        else:
            store.pause_job(job_id, False)
    out.print("The queue is resumed." if job_id is None else f"Job {job_id} is queued again.")


def run(
    until: Annotated[str | None, typer.Option(help="End of the window, HH:MM local time (e.g. 07:00)")] = None,
    hours: Annotated[float | None, typer.Option(help="Length of the window in hours")] = None,
    poll: Annotated[float | None, typer.Option(help="Wait for new jobs, looking every POLL seconds, until the window "
                                               "ends \\[default: stop when nothing is left]")] = None,
    stale_after: Annotated[float, typer.Option(help="Seconds without a heartbeat after which another machine's "
                                               "runner counts as dead and its job is resumed (keep it well "
                                               "above the store's 60 s of retries)")] = STALE_AFTER,
    workers: Annotated[int | None, typer.Option(help="Jobs run at once \\[default: 1, or one per GPU of "
                                                "--gpus]")] = None,
    gpus: Annotated[str | None, typer.Option(help="Pin each job to one GPU of these (CUDA_VISIBLE_DEVICES), never "
                                             "two running jobs to one: indices such as 0,1, or all")] = None,
    notify_url: Annotated[str | None, typer.Option(help="Post a Slack-compatible message there for each failed job "
                                                   "and at the end (better: set TUNELOOP_NOTIFY_URL, the URL "
                                                   "is a secret)")] = None,
    notify_email: Annotated[str | None, typer.Option(help="Mail that address for each failed job and at the end "
                                                     "(needs --smtp)")] = None,
    smtp: Annotated[str | None, typer.Option(help="The SMTP server, HOST[:PORT] (or TUNELOOP_SMTP; log in with "
                                             "TUNELOOP_SMTP_USER and TUNELOOP_SMTP_PASSWORD)")] = None,
    storage: Storage = None,
) -> None:
    """Run the queue's jobs (one at a time, or --workers at once) until it is empty, paused or the window
    ends. No job starts after the window's end, nor one estimated to take longer than the time left (it
    stays queued, with the reason); a job running at the end is let finish. Ctrl-C stops the running
    jobs and queues them again (a second Ctrl-C kills them at once): run this again to resume them."""
    from tuneloop.queue import Runner, window_end
    from tuneloop.queue._notify import Notifier
    from tuneloop.queue._pool import gpu_pool, slots

    end = window_end(until, hours)
    if poll is not None and not poll > 0:
        raise ConfigError(f"--poll takes a positive number of seconds, not {poll:g}.")
    if not stale_after > 0:
        raise ConfigError(f"--stale-after takes a positive number of seconds, not {stale_after:g}.")
    pool = None if gpus is None else gpu_pool(gpus)
    slots(workers, pool)  # before the store opens: a bad --workers is one line, and nothing starts
    notifier = Notifier.from_options(notify_url, notify_email, smtp,
                                     warn=lambda line: err.print(f"[yellow]Warning:[/] {safe(line)}",
                                                                 highlight=False, soft_wrap=True))
    if notifier.channels:
        out.print(f"[bold]queue:[/] notifying {safe(', '.join(notifier.channels))}", highlight=False, soft_wrap=True)
    with open_store(storage, read_only=False) as store:
        runner = Runner(store, end=end, poll=poll, stale_after=stale_after, workers=workers, gpus=pool,
                        notifier=notifier,
                        say=lambda line: out.print(f"[bold]queue:[/] {safe(line)}", highlight=False, soft_wrap=True),
                        echo=lambda line: out.print(safe(line), highlight=False, soft_wrap=True))
        previous = signal.signal(signal.SIGTERM, _interrupt)
        try:
            summary = runner.run()
        except KeyboardInterrupt:
            _interrupted(list(runner.summary.interrupted.values()))
            raise typer.Exit(130) from None
        finally:
            signal.signal(signal.SIGTERM, previous)
    done = sum(state == "done" for _, state in summary.ran)
    out.print(f"Ran {len(summary.ran)} jobs ({done} done, {len(summary.ran) - done} failed); stopped: "
              f"{safe(summary.stopped)}.", highlight=False)


def _interrupted(ended: list[Any]) -> None:
    """What Ctrl-C/SIGTERM did to the jobs that were running (as each was recorded)."""
    from tuneloop.store import JobState

    again = "run tuneloop queue run to resume it (its study resumes from the store)."
    if len(ended) == 1 and ended[0] in (JobState.DONE, JobState.FAILED):
        err.print(f"[yellow]Interrupted.[/] The running job finished as it was stopped (recorded {ended[0]}); "
                  f"run tuneloop queue run to go on with the queue.")
    elif len(ended) <= 1:
        err.print(f"[yellow]Interrupted.[/] The running job was stopped and queued again; {again}")
    else:
        queued = sum(state is JobState.QUEUED for state in ended)
        err.print(f"[yellow]Interrupted.[/] {len(ended)} running jobs were stopped: {queued} queued again, "
                  f"{len(ended) - queued} finished as they were stopped; run tuneloop queue run to resume them "
                  f"(their studies resume from the store).")


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # SIGTERM stops the runner as Ctrl-C does


def register(app: typer.Typer) -> None:
    queue_app = typer.Typer(no_args_is_help=True,
                            help="The job queue: tuneloop commands run one after another (overnight).")
    queue_app.command("add", context_settings={"ignore_unknown_options": True})(add)
    for name, command in (("list", list_), ("show", show), ("remove", remove), ("move", move), ("pause", pause),
                          ("resume", resume), ("run", run)):
        queue_app.command(name)(command)
    app.add_typer(queue_app, name="queue")
