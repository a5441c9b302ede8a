"""What every ``tuneloop`` subcommand shares: consoles, the --storage option, one-line errors."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from tuneloop.errors import TuneloopError

out = Console()
err = Console(stderr=True)

Storage = Annotated[str | None, typer.Option("--storage", help="Database URL or SQLite path [default: $TUNELOOP_STORAGE or ./tuneloop.db]")]


def friendly(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn tuneloop's errors into one red line and exit code 1; Ctrl-C into a resume hint."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except TuneloopError as exc:
            err.print(f"[red]Error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            err.print("[yellow]Interrupted.[/] Finished trials are stored; running ones are marked interrupted. "
                      "Run the same command again to resume.")
            raise typer.Exit(130) from None

    return wrapper


def missing_database(storage: str | None) -> str | None:
    """Why there is nothing to read (an SQLite file that does not exist), or None."""
    from sqlalchemy.engine import make_url

    from tuneloop.store import resolve_url

    parsed = make_url(resolve_url(storage))
    if parsed.get_backend_name() == "sqlite" and parsed.database and not Path(parsed.database).exists():
        return (f"No tuneloop database at {parsed.database}; start one with tuneloop demo or tuneloop run FILE, "
                f"or point --storage at an existing one.")
    return None


def open_store(storage: str | None, *, must_exist: bool = True) -> Any:
    """Open the store; reading commands never create an empty database file."""
    from tuneloop.store import Store

    missing = missing_database(storage) if must_exist else None
    if missing:
        raise TuneloopError(missing)
    return Store(storage)


