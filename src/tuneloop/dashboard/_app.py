"""The dashboard: a FastAPI app serving a JSON API and pages that draw it with Plotly.js.

Bound to 127.0.0.1 unless told otherwise (``tuneloop ui`` refuses another host without a token).
With a token, every request must carry it (``?token=``, an ``Authorization: Bearer`` header, or
the cookie the first page sets); files are served only from a study's artifact folder.
"""

from __future__ import annotations

import hmac
import json
from pathlib import Path
from typing import Any

from tuneloop.errors import TuneloopError
from tuneloop.store import Store
from tuneloop.store._logs import _SAFE

STATIC = Path(__file__).parent / "static"
PAGES = ("studies", "study", "trial", "compare")


def plotly_js() -> Path:
    """plotly.min.js from the installed plotly package: the pages need no network."""
    import plotly

    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


def page_html(page: str, params: dict[str, Any], *, data: dict[str, Any] | None = None,
              inline_assets: bool = False, title: str = "tuneloop") -> str:
    """The HTML of one page. The dashboard links its assets and fetches data; the report inlines
    both (``inline_assets`` and ``data``) so the file stands alone."""
    from html import escape

    boot = json.dumps({"page": page, "params": params, "data": data}).replace("</", "<\\/")
    if inline_assets:
        def inline(path: Path) -> str:  # a "</script" inside the code would end the tag early
            return path.read_text(encoding="utf-8").replace("</script", "<\\/script")

        head = (f"<style>{(STATIC / 'style.css').read_text()}</style>"
                f"<script>{inline(plotly_js())}</script><script>{inline(STATIC / 'app.js')}</script>")
    else:
        head = ('<link rel="stylesheet" href="/static/style.css"><script src="/static/plotly.min.js"></script>'
                '<script src="/static/app.js"></script>')
    return (f"<!doctype html><html><head><meta charset='utf-8'><link rel='icon' href='data:,'>"
            f"<title>{escape(title)}</title>{head}</head>"
            f"<body><nav><a href='/'>tuneloop</a> <a href='/ideas'>ideas</a></nav><main id='app'></main>"
            f"<script type='application/json' id='boot'>{boot}</script>"
            f"<script>tuneloop.boot(JSON.parse(document.getElementById('boot').textContent));</script>"
            f"</body></html>")


def create_app(storage: str | None = None, token: str | None = None) -> Any:
    """The dashboard app over the store at ``storage``."""
    from fastapi import FastAPI, HTTPException, Request
    from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response

    from tuneloop.dashboard import _data

    store = Store(storage)
    app = FastAPI(title="tuneloop", docs_url=None, redoc_url=None)

    @app.middleware("http")
    async def require_token(request: Request, call_next: Any) -> Response:
        if token is None:
            return await call_next(request)
        given = (request.query_params.get("token") or request.cookies.get("tuneloop_token")
                 or request.headers.get("authorization", "").removeprefix("Bearer ").strip())
        if not given or not hmac.compare_digest(given, token):
            return JSONResponse({"detail": "A token is required: open the URL tuneloop ui printed."}, 401)
        response = await call_next(request)
        if request.query_params.get("token"):
            response.set_cookie("tuneloop_token", token, httponly=True, samesite="strict")
        return response

    def api(fn: Any, *args: Any) -> Any:
        try:
            return fn(store, *args)
        except TuneloopError as exc:
            raise HTTPException(404, str(exc)) from None

    @app.get("/api/studies")
    def studies() -> Any:
        return _data.studies_view(store)

    @app.get("/api/ideas")
    def ideas() -> Any:
        return _data.ideas_view(store)

    @app.get("/ideas", response_class=HTMLResponse)
    def ideas_page() -> str:
        return page_html("ideas", {}, title="ideas - tuneloop")

    # names may hold any character, "/" included: the specific routes come before the catch-all
    @app.get("/api/studies/{name:path}/trials/{number}")
    def trial(name: str, number: int) -> Any:
        return api(_data.trial_view, name, number)

    @app.get("/api/studies/{name:path}/compare")
    def compare(name: str, trials: str) -> Any:
        return api(_data.compare_view, name, _numbers(trials))

    def _numbers(trials: str) -> list[int]:
        try:
            return [int(n) for n in trials.split(",") if n.strip()]
        except ValueError:
            raise HTTPException(400, "trials must be numbers, e.g. ?trials=3,7") from None

    @app.get("/api/studies/{name:path}/curves")
    def curves(name: str, trials: str) -> Any:
        return api(_data.curves_view, name, _numbers(trials))

    @app.get("/api/studies/{name:path}/analysis")
    def analysis(name: str) -> Any:
        return api(_data.analysis_view, name)

    @app.get("/api/studies/{name:path}")
    def study(name: str) -> Any:
        return api(_data.study_view, name)

    @app.get("/artifacts/{study}/{path:path}")
    def artifact(study: str, path: str) -> Any:
        base = (store.artifact_dir / _SAFE.sub("_", study)).resolve()
        target = (base / path).resolve()
        if not target.is_relative_to(base) or not target.is_file():
            raise HTTPException(404, "No such artifact.")
        return FileResponse(target)

    @app.get("/static/{name}")
    def static(name: str) -> Any:
        files = {"plotly.min.js": plotly_js(), "app.js": STATIC / "app.js", "style.css": STATIC / "style.css"}
        if name not in files:
            raise HTTPException(404, "No such file.")
        return FileResponse(files[name])

    @app.get("/", response_class=HTMLResponse)
    def index() -> str:
        return page_html("studies", {})

    @app.get("/study/{name:path}/trial/{number}", response_class=HTMLResponse)
    def trial_page(name: str, number: int) -> str:
        return page_html("trial", {"name": name, "number": number}, title=f"{name} #{number} - tuneloop")

    @app.get("/study/{name:path}/compare", response_class=HTMLResponse)
    def compare_page(name: str, trials: str = "") -> str:
        return page_html("compare", {"name": name, "trials": trials}, title=f"{name} compare - tuneloop")

    @app.get("/study/{name:path}/analysis", response_class=HTMLResponse)
    def analysis_page(name: str) -> str:
        return page_html("analysis", {"name": name}, title=f"{name} analysis - tuneloop")

    @app.get("/study/{name:path}", response_class=HTMLResponse)
    def study_page(name: str) -> str:
        return page_html("study", {"name": name}, title=f"{name} - tuneloop")

    app.state.store = store
    return app
