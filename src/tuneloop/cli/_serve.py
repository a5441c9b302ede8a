"""``tuneloop ui`` and ``tuneloop report``: a study shown in the browser, served live or as one file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tuneloop._text import safe
from tuneloop.cli._common import Storage, StudyArg, open_store, out
from tuneloop.errors import TuneloopError


def ui(
    host: Annotated[str, typer.Option(help="Interface to listen on; anything but loopback needs --token")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port")] = 8080,
    token: Annotated[str | None, typer.Option(help="Secret every request must carry (?token=...)")] = None,
    allow_host: Annotated[list[str] | None, typer.Option(
        "--allow-host", help="A Host name to answer besides localhost (repeatable), e.g. the machine's name")] = None,
    storage: Storage = None,
) -> None:
    """Serve the dashboard: studies, trials, plots, live while studies run.

    Answers only Host localhost, 127.0.0.1 or [::1] (no DNS rebinding); --allow-host adds names."""
    import uvicorn
    from rich.markup import escape  # a path or token holding "[/x]" is text, not markup

    from tuneloop.dashboard import create_app

    loopback = host in ("127.0.0.1", "localhost", "::1")
    if not loopback and not token:
        raise TuneloopError(f"--host {host} exposes the dashboard beyond this machine: add --token SECRET "
                            f"(every request must then carry it), or keep the default --host 127.0.0.1.")
    allowed = list(allow_host or [])
    if not loopback and host not in ("0.0.0.0", "::"):  # a named interface: its own name is answered
        allowed.append(host)
    app_ = create_app(storage, token=token, allowed_hosts=allowed)
    from tuneloop.views import warm_up

    warm_up(app_.state.store)  # imports now, the recent studies' views in the background: a first look waits less
    shown = "localhost" if loopback else f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}/" + (f"?token={token}" if token else "")
    out.print(f"Dashboard of {escape(app_.state.store.url)} at [bold]{escape(url)}[/] (Ctrl-C to stop)")
    uvicorn.run(app_, host=host, port=port, log_level="warning")


def report(
    study: StudyArg,
    output: Annotated[Path, typer.Option("--output", "-o", help="The HTML file to write")] = Path("report.html"),
    storage: Storage = None,
) -> None:
    """Write one self-contained HTML file of a study and its best trial (plots and images inside)."""
    from tuneloop.report import write_report

    path = write_report(open_store(storage), study, output)
    out.print(f"Wrote {safe(path)} ({path.stat().st_size / 1e6:.1f} MB): open it in any browser, no server needed.")


def register(app: typer.Typer) -> None:
    app.command("ui")(ui)
    app.command("report")(report)
