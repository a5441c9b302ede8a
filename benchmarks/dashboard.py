"""The dashboard, reports and ``analyze`` on big studies: 1,000 and 10,000 finished trials x 100
reported steps (SQLite, 4 parameters), as the population engine and exploration rounds produce them.

    python benchmarks/dashboard.py                     # 1,000 and 10,000 trials: API, analyze, report
    python benchmarks/dashboard.py --sizes 1000        # one size
    python benchmarks/dashboard.py --browser           # also the pages in headless chromium (Playwright)
    python benchmarks/dashboard.py --browser --optuna-dashboard   # and optuna-dashboard on the same study

Measured, per size: building the study (not a target); the study API's response as the dashboard
serves it (``study_response``: no rows) cold (a fresh process's first call, its JSON included: the
page is answered without the importance, which computes in the background), warm (a poll of an
unchanged study: answered 304) and ready (the whole answer once the importance is in), with its
size in bytes; the trials table's first page, and a page sorted by a parameter; the trial page's view; the
background importance's own time; a live study gaining a trial per second, polled (each answer's
time with its JSON); ``tuneloop analyze``; ``tuneloop report`` (time and file size).
With ``--browser``: the study page for a first visit (a fresh server and a fresh browser), cold (a
fresh server, a browser that opened the dashboard before) and warm (the same ones again), each until
the plots on the screen have drawn (``*_screen_s``) and until every plot of the page has; the trial
page, and the report file opened from disk. Results in ``results/dashboard.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
STEPS = 100
SPACE = {"lr": ("log", 1e-4, 1.0), "width": ("int", 16, 512), "dropout": ("float", 0.0, 0.5),
         "act": ("choice", ["relu", "tanh", "gelu"])}


def build(path: Path, trials: int, seed: int = 0) -> float:
    """A finished study of ``trials`` trials x ``STEPS`` val_acc points; returns the seconds it took."""
    import tuneloop as tl
    from tuneloop.store import Store

    start = time.perf_counter()
    rng = random.Random(seed)
    space = tl.Space(lr=tl.LogFloat(1e-4, 1.0), width=tl.Int(16, 512), dropout=tl.Float(0.0, 0.5),
                     act=tl.Choice(["relu", "tanh", "gelu"]))
    with Store(f"sqlite:///{path}") as store:
        record = store.create_study("big", "val_acc", "max", space, {"budget": {"epochs": STEPS}, "seed": seed})
        points: list[tuple[int, int, int, str, float]] = []
        for n in range(trials):
            p = {"lr": math.exp(rng.uniform(math.log(1e-4), 0.0)), "width": rng.randint(16, 512),
                 "dropout": rng.uniform(0.0, 0.5), "act": rng.choice(["relu", "tanh", "gelu"])}
            top = (0.9 - 0.05 * (math.log10(p["lr"]) + 2.5) ** 2 - 0.2 * abs(p["dropout"] - 0.2)
                   + {"relu": 0.01, "tanh": -0.02, "gelu": 0.015}[p["act"]] + 0.01 * math.log(p["width"]) / 6)
            rate = rng.uniform(0.02, 0.2)
            trial = store.create_trial(record.id, n, p, seed=n)
            curve = [top - (top - 0.1) * math.exp(-rate * s) + rng.gauss(0, 0.003) for s in range(1, STEPS + 1)]
            points.extend((trial, 0, s, "val_acc", v) for s, v in enumerate(curve, 1))
            store.finish_trial(trial, "completed", curve[-1], {"val_acc": curve[-1]})
            if len(points) >= 20_000:
                store.add_points(points)
                points = []
        if points:
            store.add_points(points)
    return time.perf_counter() - start


def timed(fn: Any, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    value = fn(*args, **kwargs)
    return value, time.perf_counter() - start


def api_figures(url: str) -> dict[str, Any]:
    """Run in a fresh process (``--api URL``): the study's answer as the dashboard serves it (no rows: the
    table asks for a page) cold and warm, the table's pages, the trial view, the importance."""
    import threading

    from tuneloop.store import Store
    from tuneloop.views import study_response, trial_view, trials_page_view, warm_up

    def answer(wait: bool = False) -> dict[str, Any]:
        view, _ = study_response(store, "big", wait=wait)
        json.dumps(view)  # what the server sends: its JSON included
        return view

    def poll() -> str:  # the browser's poll of an unchanged study: its tag, then "304 Not Modified"
        return study_response(store, "big", wait=False)[1]

    with Store(url, read_only=True) as store:
        thread, start_s = timed(warm_up, store)  # what the server does as it starts (imports; the study's parts begin)
        cold, cold_s = timed(answer)  # asked for at once: waits for the rest of the warm-up's work
        warm_s = min(timed(poll)[1] for _ in range(3))
        _, importance_s = timed(answer, True)  # waits for the background computation
        ready, ready_s = timed(answer)
        page = min(timed(trials_page_view, store, "big")[1] for _ in range(3))  # the table's first page
        by_param = min(timed(trials_page_view, store, "big", sort="param:lr", order="desc", offset=400)[1]
                       for _ in range(3))  # another sort, a later page: in SQL
        _, trial_s = timed(trial_view, store, "big", 0)
        assert isinstance(thread, threading.Thread)
    return {"server_warm_up_s": round(start_s, 3), "study_cold_s": round(cold_s, 3),
            "study_cold_importance": cold["importance_status"]["state"],
            "study_warm_s": round(warm_s, 3), "importance_wait_s": round(importance_s, 3),
            "study_ready_s": round(ready_s, 3), "study_bytes": len(json.dumps(ready)),
            "table_page_s": round(page, 3), "table_page_sorted_s": round(by_param, 3), "trial_s": round(trial_s, 3)}


CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]


def _serve(cmd: list[str], port: int) -> subprocess.Popen[bytes]:
    """Start a server and wait until it answers (a fresh process: the cold case)."""
    import urllib.request

    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)
            return proc
        except Exception:  # noqa: BLE001 - not up yet
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"{cmd[:3]} did not answer on port {port}")


SCREEN = "document.body.dataset.screen === 'drawn'"  # every plot on the screen has drawn
EVERY = "document.body.dataset.plots === 'drawn'"  # every plot of the page has (off-screen ones when idle)


def _drawn(page: Any, url: str, plots: int, ready: str) -> tuple[float, float]:
    """Seconds from navigation until ``ready`` holds and the plots on the screen have drawn, and until
    ``plots`` plots have drawn, every one of the page."""
    start = time.perf_counter()
    page.goto(url)
    page.wait_for_function(f"() => ({ready}) && {SCREEN}", timeout=300_000)
    screen = time.perf_counter() - start
    page.wait_for_function(f"() => ({ready}) && {EVERY} && document.querySelectorAll('.js-plotly-plot').length >= {plots}",
                           timeout=300_000)
    return screen, time.perf_counter() - start


RUNS = 5  # the cold cases: the median of this many fresh servers (and fresh browsers for a first visit)


def _median(runs: list[tuple[float, float]]) -> tuple[float, float]:
    """The median run by its time to every plot (its screen time with it)."""
    return sorted(runs, key=lambda r: r[1])[len(runs) // 2]


def _both(prefix: str, figures: tuple[float, float]) -> dict[str, float]:
    return {f"{prefix}_screen_s": round(figures[0], 2), f"{prefix}_s": round(figures[1], 2)}


def browser_figures(url: str, db: Path, size: int, report: Path | None = None) -> dict[str, Any]:
    """The study and trial pages in headless chromium, each timed to the plots on the screen
    (``*_screen_s``) and to every plot of the page:

    - ``first_visit``: a fresh server and a browser that never opened the dashboard (Plotly.js downloaded
      and compiled: about 1.2 s of a fresh browser's main thread on this machine); the median of ``RUNS``;
    - ``cold``: a fresh server and a browser that opened the dashboard before (a profile that loaded the page
      twice under an earlier server, then closed: Plotly.js comes from its cache, compiled), the case of a
      user who restarts ``tuneloop ui``; the median of ``RUNS``; then the same page once its importance
      is in, and warm (again);
    - the trial page, and the report file opened from disk."""
    from playwright.sync_api import sync_playwright

    port = 8765
    out: dict[str, Any] = {}
    cmd = [sys.executable, "-m", "tuneloop.cli", "ui", "--storage", url, "--port", str(port)]
    study = f"http://127.0.0.1:{port}/study/big"
    drawn = "document.body.dataset.loaded === 'true'"
    with_importance = drawn + " && !/Computing/.test(document.getElementById('importance-status').textContent)"
    plots = 3 + len(SPACE)  # history, parallel coordinates, curves, one per parameter; then importance
    viewport = {"width": 1400, "height": 1000}

    def stop(server: subprocess.Popen[bytes]) -> None:
        server.terminate()
        server.wait()

    with sync_playwright() as p, tempfile.TemporaryDirectory(prefix="tuneloop-chromium-") as profile:
        def returning() -> Any:  # the browser profile that opened the dashboard before
            return p.chromium.launch_persistent_context(profile, executable_path=CHROMIUM, headless=True, args=ARGS,
                                                        viewport=viewport)

        first: list[tuple[float, float]] = []
        for _ in range(RUNS):  # a first visit: nothing cached anywhere
            server = _serve(cmd, port)
            try:
                browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
                first.append(_drawn(browser.new_page(viewport=viewport), study, plots, drawn))
                browser.close()
            finally:
                stop(server)
        out.update(_both("study_page_first_visit", _median(first)))
        server = _serve(cmd, port)
        try:  # yesterday's visits: the profile opens the page twice (Chrome keeps compiled code from the second)
            context = returning()
            for _ in range(2):
                _drawn(context.new_page(), study, plots, drawn)
            context.close()
        finally:
            stop(server)
        cold: list[tuple[float, float]] = []
        for _ in range(RUNS - 1):  # today: a fresh server, the same browser profile (the last run below)
            server = _serve(cmd, port)
            try:
                context = returning()
                cold.append(_drawn(context.new_page(), study, plots, drawn))
                context.close()
            finally:
                stop(server)
        server = _serve(cmd, port)
        try:
            context = returning()
            page = context.new_page()
            cold.append(_drawn(page, study, plots, drawn))
            out.update(_both("study_page_cold", _median(cold)))
            out.update(_both("study_page_importance", _drawn(page, study, plots + 1, with_importance)))
            out.update(_both("study_page_warm", min(_drawn(page, study, plots + 1, with_importance) for _ in range(2))))
            out.update(_both("trial_page", _drawn(page, f"http://127.0.0.1:{port}/study/big/trial/0", 1, drawn)))
            if report is not None:  # the one-file report, opened from disk (its data embedded)
                out.update(_both("report_open", _drawn(page, report.as_uri(), plots + 1, drawn)))
            context.close()
        finally:
            stop(server)
    return out


def optuna_dashboard_figures(db: Path, size: int) -> dict[str, Any]:
    """The same study in optuna-dashboard (``pip install optuna-dashboard``): converted through Optuna's
    API (every trial with its 100 intermediate values), its study page in the same chromium."""
    import optuna
    from playwright.sync_api import sync_playwright

    from tuneloop.store import Store

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    target = db.with_name(f"optuna{size}.db")
    with Store(f"sqlite:///{db}", read_only=True) as store:
        record = store.require_study("big")
        trials = store.trials(record.id)
        series = store.series([t.id for t in trials], names=["val_acc"])
        study = optuna.create_study(study_name="big", storage=f"sqlite:///{target}", direction="maximize")
        study.add_trials([optuna.trial.create_trial(
            value=t.value, params=t.params, distributions=record.space.distributions(t.params),
            intermediate_values=dict(series[t.id].get("val_acc", []))) for t in trials])
    port = 8766
    server = _serve(["optuna-dashboard", f"sqlite:///{target}", "--port", str(port)], port)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            url = f"http://127.0.0.1:{port}/dashboard/studies/1"

            def timed_page() -> float:
                start = time.perf_counter()
                page.goto(url)
                page.wait_for_load_state("networkidle", timeout=300_000)
                page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot, canvas, svg').length > 0",
                                       timeout=300_000)
                return time.perf_counter() - start

            cold = timed_page()
            warm = min(timed_page() for _ in range(2))
            browser.close()
    finally:
        server.terminate()
        server.wait()
    return {"optuna_dashboard_cold_s": round(cold, 2), "optuna_dashboard_warm_s": round(warm, 2)}


def live_figures(url: str, seconds: float = 10.0) -> dict[str, Any]:
    """A live study gaining a trial per second (a writer thread) while a poller asks for the study as
    the dashboard does every 2 s, here every 0.2 s: each answer's time, JSON included; when it changed,
    with the table's page the browser then asks for."""
    import statistics
    import threading

    from tuneloop.store import Store
    from tuneloop.views import study_response, trials_page_view

    times: list[float] = []
    stop = threading.Event()
    with Store(url) as store:
        record = store.require_study("big")
        number = len(store.trials(record.id))
        study_response(store, "big")  # the page was open before: its parts and importance are in

        def writer() -> None:
            n = number
            while not stop.wait(1.0):
                trial = store.create_trial(record.id, n, {"lr": 1e-3, "width": 64, "dropout": 0.1, "act": "relu"},
                                           seed=n)
                store.finish_trial(trial, "completed", 0.5, {"val_acc": 0.5})
                n += 1

        thread = threading.Thread(target=writer, daemon=True)
        thread.start()
        end = time.perf_counter() + seconds
        last = None
        while time.perf_counter() < end:
            start = time.perf_counter()
            view, tag = study_response(store, "big", wait=False)
            if tag != last:  # changed: the browser draws it with its table's page (unchanged: a 304)
                json.dumps(view)
                json.dumps(trials_page_view(store, "big"))
                last = tag
            times.append(time.perf_counter() - start)
            time.sleep(0.2)
        stop.set()
        thread.join()
    return {"live_polls": len(times), "live_poll_median_s": round(statistics.median(times), 4),
            "live_poll_max_s": round(max(times), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--browser", action="store_true")
    parser.add_argument("--optuna-dashboard", action="store_true",
                        help="with --browser: the same study in optuna-dashboard (pip install optuna-dashboard)")
    parser.add_argument("--optuna-sizes", default="1000",
                        help="the sizes optuna-dashboard is measured at (converting 10,000 trials through Optuna's "
                             "storage takes about 15 minutes)")
    parser.add_argument("--api", help=argparse.SUPPRESS)  # the fresh process of api_figures
    parser.add_argument("--out", default=str(HERE / "results" / "dashboard.json"))
    args = parser.parse_args()
    if args.api:
        print(json.dumps(api_figures(args.api)))
        return
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="tuneloop-dashboard-") as tmp:
        for size in (int(s) for s in args.sizes.split(",")):
            db = Path(tmp) / f"big{size}.db"
            url = f"sqlite:///{db}"
            row: dict[str, Any] = {"build_s": round(build(db, size), 1)}
            api = subprocess.run([sys.executable, __file__, "--api", url], capture_output=True, text=True, check=True)
            row.update(json.loads(api.stdout.strip().splitlines()[-1]))
            row.update(live_figures(url))
            tl = [sys.executable, "-m", "tuneloop.cli"]
            _, row["analyze_s"] = timed(subprocess.run, [*tl, "analyze", "big", "--storage", url], check=True,
                                        capture_output=True)
            report = Path(tmp) / f"report{size}.html"
            _, row["report_s"] = timed(subprocess.run, [*tl, "report", "big", "--output", str(report), "--storage", url],
                                       check=True, capture_output=True)
            row["report_mb"] = round(report.stat().st_size / 1e6, 2)
            row["analyze_s"], row["report_s"] = round(row["analyze_s"], 2), round(row["report_s"], 2)
            if args.browser:
                row.update(browser_figures(url, db, size, report))
                if args.optuna_dashboard and str(size) in args.optuna_sizes.split(","):
                    row.update(optuna_dashboard_figures(db, size))
            results[str(size)] = row
            print(size, json.dumps(row), flush=True)
    out = {"benchmark": "dashboard", "command": "python " + " ".join(sys.argv), "steps": STEPS, "results": results,
           "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                       "affinity": sorted(os.sched_getaffinity(0)), "load_at_end": os.getloadavg()},
           "date": time.strftime("%Y-%m-%d %H:%M:%S")}
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
