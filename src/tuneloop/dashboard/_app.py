"""The dashboard: a FastAPI app serving a JSON API and pages that draw it with Plotly.js.

Bound to 127.0.0.1 unless told otherwise (``tuneloop ui`` refuses another host without a token).
Every request's ``Host`` header is checked first, so a web page cannot reach the API through DNS
rebinding: without a token only ``localhost``, ``127.0.0.1`` and ``[::1]`` are answered (plus the
names in ``allowed_hosts``); with a token, IP addresses too (a rebinding attack always sends its own
domain name). With a token, every request must carry it (``?token=``, an ``Authorization: Bearer``
header, or the cookie the first page sets). Files are served only through
:meth:`Store.artifact_file`, which refuses any path that leaves the artifact folder.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
import ipaddress
import json
import math
import re
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tuneloop.errors import ConfigError, NotFound, StorageError, TuneloopError
from tuneloop.store import Store

STATIC = Path(__file__).parent / "static"
PAGES = ("studies", "study", "trial", "compare")
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]"})
MAX_TRIAL_NUMBER = 2**63 - 1  # SQLite's largest integer: past it a query overflows instead of finding nothing
MAX_PICKED = 1000  # trial numbers one request may name (?trials=...)
# files the pages show inline; anything else is a download, so a stored .html or .svg cannot run in this origin
INLINE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
                ".webp": "image/webp"}
_HOST = re.compile(r"(\[[0-9a-f:.]+\]|[^:\[\]]+)(?::\d{1,5})?")


def host_name(header: str | None) -> str | None:
    """The name in a ``Host`` header, lower-cased, without its port (``[::1]:8080`` -> ``[::1]``); None if malformed."""
    match = _HOST.fullmatch((header or "").strip().lower())
    return match.group(1) if match else None


def normalize_host(name: str) -> str:
    """An ``--allow-host`` name as :func:`host_name` writes it (``::1`` -> ``[::1]``, any case, port dropped)."""
    name = name.strip().lower()
    if ":" in name and not name.startswith("["):
        try:
            ipaddress.IPv6Address(name)
            return f"[{name}]"
        except ValueError:
            pass
    return host_name(name) or name


def host_allowed(name: str | None, allowed: Iterable[str], *, with_token: bool) -> bool:
    """Whether to answer a request whose Host names ``name`` (a DNS rebinding defence).

    Loopback names and ``allowed`` always; with a token, IP addresses too: a rebinding page
    reaches the server under its own domain name, never under an IP address."""
    if name is None:
        return False
    if name in LOOPBACK_HOSTS or name in allowed:
        return True
    if not with_token:
        return False
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    return True


def token_matches(given: str | None, token: str) -> bool:
    """Constant-time comparison of any string, non-ASCII included (compare_digest takes only ASCII str)."""
    if not given:
        return False
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), token.encode("utf-8", "surrogatepass"))


def status_of(exc: TuneloopError) -> int:
    """The HTTP status of a tuneloop error: 404 not found, 503 storage, 400 any other bad input."""
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, StorageError):
        return 503
    return 400  # ConfigError and every other error a request's input caused


def one_line(exc: BaseException) -> str:
    """The first line of an error's message: what the JSON ``detail`` carries."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def plotly_js() -> Path:
    """plotly.min.js from the installed plotly package: the pages need no network."""
    import plotly

    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


def boot_json(value: Any) -> str:
    """JSON safe inside a <script> element: no ``<`` at all, so neither ``</script>`` nor ``<!--<script>``
    (which would keep the element open past its end tag and blank the page) can appear in any string."""
    text = json.dumps(value)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def page_html(page: str, params: dict[str, Any], *, data: dict[str, Any] | None = None,
              inline_assets: bool = False, title: str = "tuneloop", plotly: bool = True, hold: str | None = None) -> str:
    """The HTML of one page. The dashboard links its assets and fetches data; the report inlines
    both (``inline_assets`` and ``data``) so the file stands alone. ``plotly=False`` leaves Plotly.js
    out of an inlined page that draws no Plotly chart (the morning report: a few KB instead of 4 MB).
    ``hold``: the token the page releases once its plots have drawn (:mod:`tuneloop.views._holds`)."""
    from html import escape

    boot = boot_json({"page": page, "params": params, "data": data, **({"hold": hold} if hold else {})})
    if inline_assets:
        def inline(path: Path) -> str:  # a "</script" inside the code would end the tag early
            return path.read_text(encoding="utf-8").replace("</script", "<\\/script")

        head = (f"<style>{(STATIC / 'style.css').read_text()}</style>"
                + (f"<script>{inline(plotly_js())}</script>" if plotly else "")
                + f"<script>{inline(STATIC / 'app.js')}</script>")
        body_boot = f"<script type='application/json' id='boot'>{boot}</script>"
    else:  # the page's first requests start before Plotly.js (4.6 MB to compile, a second in a fresh browser) loads
        v = asset_versions()
        head = (f'<link rel="stylesheet" href="/static/style.css?v={v["style.css"]}">'
                f'<script src="/static/app.js?v={v["app.js"]}"></script>'
                f"<script type='application/json' id='boot'>{boot}</script>"
                "<script>tuneloop.prefetch(JSON.parse(document.getElementById('boot').textContent));</script>"
                f'<script src="/static/plotly.min.js?v={v["plotly.min.js"]}"></script>')
        body_boot = ""
    return (f"<!doctype html><html><head><meta charset='utf-8'><link rel='icon' href='data:,'>"
            f"<title>{escape(title)}</title>{head}</head>"
            f"<body><nav><a href='/'>tuneloop</a> <a href='/ideas'>ideas</a></nav><main id='app'></main>{body_boot}"
            f"<script>tuneloop.boot(JSON.parse(document.getElementById('boot').textContent));</script>"
            f"</body></html>")


def static_files() -> dict[str, Path]:
    """The files the pages load: Plotly.js from the installed plotly package, the app's script and style."""
    return {"plotly.min.js": plotly_js(), "app.js": STATIC / "app.js", "style.css": STATIC / "style.css"}


# V8's explicit compile hint (Chrome 136 and later; a comment elsewhere): compile every function of the file while
# it downloads, off the main thread, rather than each at its first call. Plotly.js runs most of itself as it
# loads: about 0.1 s of the 1.2 s a fresh browser spends on it (measured alone on a blank page, chromium 150).
COMPILE_HINT = b"//# allFunctionsCalledOnLoad\n"
STATIC_TYPES = {"plotly.min.js": "text/javascript; charset=utf-8", "app.js": "text/javascript; charset=utf-8",
                "style.css": "text/css; charset=utf-8"}


@functools.cache
def static_asset(name: str) -> tuple[bytes, bytes, str]:
    """A static file as served: its bytes, their gzip (Plotly.js: 4.6 MB, 1.4 MB gzipped, for a dashboard
    reached through an SSH tunnel), and its version (a hash of the bytes). Read and compressed once per
    process (``tuneloop ui`` does it while it starts)."""
    import gzip

    raw = static_files()[name].read_bytes()
    if name.endswith(".js"):
        raw = COMPILE_HINT + raw
    return raw, gzip.compress(raw, compresslevel=6, mtime=0), hashlib.sha256(raw).hexdigest()[:12]


def accepts_gzip(header: str) -> bool:
    """Whether an ``Accept-Encoding`` header takes gzip (``gzip``, ``*``; not ``gzip;q=0``)."""
    taken: dict[str, bool] = {}
    for part in header.lower().split(","):
        coding, _, params = part.strip().partition(";")
        q = params.strip().removeprefix("q=") if params.strip().startswith("q=") else "1"
        try:
            taken[coding.strip()] = float(q) > 0
        except ValueError:
            taken[coding.strip()] = False
    return taken.get("gzip", taken.get("*", False))


def asset_versions() -> dict[str, str]:
    """Each static file's version: its URL's ``?v=``, so a browser may keep it for a year (a new version is
    a new URL) and a returning visit neither downloads nor recompiles Plotly.js."""
    return {name: static_asset(name)[2] for name in static_files()}


def create_app(storage: str | None = None, token: str | None = None,
               allowed_hosts: Iterable[str] = ()) -> Any:
    """The dashboard app over the store at ``storage``.

    ``allowed_hosts``: Host names answered besides the loopback ones (``tuneloop ui --allow-host``)."""
    from fastapi import FastAPI, Header, HTTPException, Request
    from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response

    from tuneloop import views
    from tuneloop.views._holds import HOLDS

    if token is not None and not (token and token.isascii() and token.isprintable() and " " not in token):
        raise ConfigError("The token must be printable ASCII without spaces, e.g. --token $(openssl rand -hex 16).")
    allowed = frozenset(normalize_host(h) for h in allowed_hosts)
    store = Store(storage, read_only=True)  # the dashboard only reads: never creates, converts or adds tables
    asset_versions()  # read, compressed and hashed once per process (0.2 s), before the first page

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> Any:
        yield
        from tuneloop.views._worker import stop_worker

        HOLDS.clear()  # a page still drawing holds nothing past its server: the next one's worker starts free
        stop_worker()  # a SIGTERMed server ends without exit hooks: its importance worker must not outlive it

    app = FastAPI(title="tuneloop", docs_url=None, redoc_url=None, lifespan=lifespan)

    @app.middleware("http")
    async def guard(request: Request, call_next: Any) -> Response:
        name = host_name(request.headers.get("host"))
        if not host_allowed(name, allowed, with_token=token is not None):
            shown = (request.headers.get("host") or "")[:100]
            return JSONResponse({"detail": f"Host {shown!r} is not served: open http://localhost:PORT/, or restart "
                                           f"tuneloop ui with --allow-host {name or 'NAME'}."}, 403)
        if token is not None:
            given = (request.query_params.get("token") or request.cookies.get("tuneloop_token")
                     or request.headers.get("authorization", "").removeprefix("Bearer ").strip())
            if not token_matches(given, token):
                return JSONResponse({"detail": "A token is required: open the URL tuneloop ui printed."}, 401)
        response = await call_next(request)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"  # no other site may frame the pages (clickjacking)
        if token is not None and request.query_params.get("token"):
            response.set_cookie("tuneloop_token", token, httponly=True, samesite="strict")
        return response

    @app.exception_handler(TuneloopError)
    async def tuneloop_error(request: Request, exc: TuneloopError) -> Response:
        return JSONResponse({"detail": one_line(exc)}, status_of(exc))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:  # a bug: one line here, the traceback in the log
        detail = f"Internal error ({type(exc).__name__}); the server log has the traceback."
        return JSONResponse({"detail": detail}, 500)

    def api(fn: Any, *args: Any, **kwargs: Any) -> Any:
        return fn(store, *args, **kwargs)  # a TuneloopError becomes its status by the handler above

    def _number(number: int) -> int:
        if not 0 <= number <= MAX_TRIAL_NUMBER:
            raise NotFound(f"No trial {number}: trial numbers run from 0 to {MAX_TRIAL_NUMBER}.")
        return number

    @app.get("/api/studies")
    def studies() -> Any:
        return views.studies_view(store)

    @app.get("/api/ideas")
    def ideas() -> Any:
        return views.ideas_view(store)

    @app.get("/api/morning")
    def morning() -> Any:
        """The latest night's summary (the home page's "Last night" panel), up to the next whole minute:
        the page polls every 2 s and redraws the panel only when it changed, so a running job's
        duration moves on once a minute, not at every poll."""
        return views.morning(store, until=math.ceil(time.time() / 60) * 60).to_dict()

    @app.get("/ideas", response_class=HTMLResponse)
    def ideas_page() -> str:
        return page_html("ideas", {}, title="ideas - tuneloop")

    # names may hold any character, "/" included: the specific routes come before the catch-all
    @app.get("/api/studies/{name:path}/trials/{number}")
    def trial(name: str, number: int) -> Any:
        return api(views.trial_view, name, _number(number))

    # not under /api/studies/NAME/: a study may be named "x/trials" (a name holds any character, "/" included)
    @app.get("/api/trials/{name:path}")
    def trials_page(name: str, offset: int = 0, limit: int = views.PAGE_ROWS, sort: str = "number", order: str = "asc",
                    state: str = "all") -> Any:
        """The trials table a page at a time, sorted and filtered in SQL (the study's answer holds no rows)."""
        return api(views.trials_page_view, name, offset=offset, limit=limit, sort=sort, order=order, state=state)

    @app.get("/api/studies/{name:path}/compare")
    def compare(name: str, trials: str) -> Any:
        return api(views.compare_view, name, _numbers(trials))

    def _numbers(trials: str) -> list[int]:
        try:
            numbers = [int(n) for n in trials.split(",") if n.strip()]
        except ValueError:
            raise ConfigError("trials must be numbers, e.g. ?trials=3,7") from None
        if len(numbers) > MAX_PICKED:
            raise ConfigError(f"trials names {len(numbers)} trials; ask for at most {MAX_PICKED} at a time.")
        return [_number(n) for n in numbers]

    @app.get("/api/studies/{name:path}/curves")
    def curves(name: str, trials: str) -> Any:
        return api(views.curves_view, name, _numbers(trials))

    @app.get("/api/studies/{name:path}/analysis")
    def analysis(name: str) -> Any:
        return api(views.analysis_view, name)

    @app.get("/api/studies/{name:path}")
    def study(name: str, if_none_match: str | None = Header(default=None)) -> Any:
        # never waits for a study-wide analysis: importance computes in the background, the page polls;
        # a poll of an unchanged study gets 304 (the browser revalidates with the ETag: no-cache)
        view, tag = views.study_response(store, name, wait=False)
        etag = f'"{tag}"'
        headers = {"ETag": etag, "Cache-Control": "no-cache"}
        if if_none_match == etag:
            return Response(status_code=304, headers=headers)
        return JSONResponse(view, headers=headers)

    @app.get("/artifacts/{path:path}")
    def artifact(path: str) -> Any:
        """A stored artifact path (what a sample row holds), as :meth:`Store.artifact_file` resolves it."""
        target = store.artifact_file(path)  # the decoded path: "..", absolute paths and links leaving the folder: 404
        if not target.is_file():
            raise NotFound(f"No artifact {path!r}.")
        media = INLINE_TYPES.get(target.suffix.lower())
        if media is None:  # never rendered in this origin: a download
            return FileResponse(target, media_type="application/octet-stream", filename=target.name,
                                headers={"Content-Security-Policy": "sandbox"})
        return FileResponse(target, media_type=media, headers={"Content-Security-Policy": "sandbox"})

    @app.get("/static/{name}")
    def static(name: str, v: str | None = None, accept_encoding: str = Header(default=""),
               if_none_match: str | None = Header(default=None)) -> Any:
        if name not in STATIC_TYPES:
            raise HTTPException(404, "No such file.")
        raw, packed, version = static_asset(name)
        gzipped = accepts_gzip(accept_encoding)
        # the versioned URL the pages link is kept a year; any other is checked again at each use (its ETag,
        # one per encoding)
        etag = f'"{version}-gz"' if gzipped else f'"{version}"'
        headers = {"Cache-Control": "public, max-age=31536000, immutable" if v == version else "no-cache",
                   "ETag": etag, "Vary": "Accept-Encoding"}
        if etag in (tag.strip().removeprefix("W/") for tag in (if_none_match or "").split(",")):
            return Response(status_code=304, headers=headers)
        if gzipped:
            return Response(packed, media_type=STATIC_TYPES[name], headers={**headers, "Content-Encoding": "gzip"})
        return Response(raw, media_type=STATIC_TYPES[name], headers=headers)

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
    def study_page(name: str, sec_fetch_site: str | None = Header(default=None)) -> str:
        # the importance fit pauses while this page draws: its plots first (it releases the hold once drawn); not
        # for a request another site made (an <img> pointed here): browsers say so in Sec-Fetch-Site
        own = sec_fetch_site in (None, "none", "same-origin")
        return page_html("study", {"name": name}, title=f"{name} - tuneloop", hold=HOLDS.hold() if own else None)

    @app.delete("/api/holds/{hold}", status_code=204, response_class=Response, response_model=None)
    def release(hold: str) -> Any:
        """A study page has drawn: the fit it paused goes on (an unknown or lapsed hold changes nothing)."""
        HOLDS.release(hold)
        return Response(status_code=204)

    app.state.store = store
    return app
