"""The ``tuneloop`` command: demo, run, worker, enqueue, ask, tell, status, trials, best, show, export, ui, report, check, baseline,
finalize, ensemble, refine, rounds, analyze, probe, idea, import, queue, morning.

One module per command group, each exposing ``register(app)``; this module builds the app, calls
them in a fixed order, lists the commands in :data:`HELP_ORDER`, and wraps every command (those of
sub-apps too) in :func:`~tuneloop.cli._common.friendly`, here and nowhere else.
"""

from __future__ import annotations

import typer

from tuneloop.cli import (
    _analyze,
    _asktell,
    _checks,
    _finalize,
    _ideas,
    _interop,
    _morning,
    _queue,
    _read,
    _rounds,
    _run,
    _serve,
)
from tuneloop.cli._common import friendly

__all__ = ["app", "build_app", "main"]

# the order ``tuneloop --help`` lists the commands in (sub-apps such as probe and idea follow them)
HELP_ORDER = ("run", "worker", "enqueue", "ask", "tell", "status", "trials", "best", "show", "ui", "report", "check",
              "baseline", "export", "demo", "finalize", "ensemble", "refine", "rounds", "analyze", "morning")
_MODULES = (_run, _read, _serve, _checks, _finalize, _rounds, _analyze, _ideas, _interop, _asktell, _queue, _morning)


def _wrap(app: typer.Typer) -> None:
    """Every command of ``app`` and of its sub-apps says tuneloop's errors in one line."""
    for command in app.registered_commands:
        if command.callback is not None:  # always, for a command registered with @app.command
            command.callback = friendly(command.callback)
    for group in app.registered_groups:
        if group.typer_instance is not None:
            _wrap(group.typer_instance)


def build_app() -> typer.Typer:
    """A fresh ``tuneloop`` app with every command registered."""
    app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                      help="tuneloop: the deep-learning optimization loop, systematic and fast.")
    for module in _MODULES:
        module.register(app)
    rank = {name: i for i, name in enumerate(HELP_ORDER)}
    app.registered_commands.sort(key=lambda c: rank.get(c.name or "", len(rank)))  # stable: new ones go last
    _wrap(app)
    return app


app = build_app()


def main() -> None:  # pragma: no cover - console entry point
    app()
