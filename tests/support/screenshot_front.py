"""The screenshot of a two-objective study's Pareto front in docs/images/multi-objective-front.png.

Regenerate it (Debian's chromium and Playwright, as the browser tests use them) from the study
docs/multi-objective.md runs (examples/multi_objective_mnist1d.py, in the folder it ran in):

    python tests/support/screenshot_front.py docs/images/multi-objective-front.png \
        --storage sqlite:///tuneloop.db --study mnist1d-accuracy-latency

Without ``--storage`` it runs a 60-trial random search trading val_acc (max) against latency_ms (min)
with latency_ms <= 3 into a temporary store first. Either way it serves the dashboard on the store and
photographs the study page's front.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # trial_functions: the worker processes import it by name

import trial_functions as tf  # noqa: E402

import tuneloop as tl  # noqa: E402

OUT = HERE.parents[1] / "docs" / "images" / "multi-objective-front.png"


@contextlib.contextmanager
def serve_dashboard(storage: str) -> Iterator[str]:
    """The dashboard over ``storage`` on a free local port; yields its URL."""
    from dashboard_server import serve

    from tuneloop.dashboard import create_app

    with serve(create_app(storage)) as port:
        yield f"http://127.0.0.1:{port}"


def main(out: Path = OUT, storage: str | None = None, study: str = "accuracy-vs-latency") -> Path:
    with tempfile.TemporaryDirectory() as folder:
        if storage is None:
            storage = f"sqlite:///{folder}/tuneloop.db"
            tl.Study(study, tl.Space(width=tl.Float(0.0, 1.0), padding=tl.Float(0.0, 1.0)),
                     tf.accuracy_latency, objectives={"val_acc": "max", "latency_ms": "min"},
                     constraints={"latency_ms": ("<=", 3.0)}, storage=storage, searcher="random").run(n_trials=60, seed=0)
        photograph(storage, study, out)
    return out


def photograph(storage: str, study: str, out: Path) -> None:
    """The study page's front section of ``study`` in ``storage``, as a PNG at ``out``."""
    from urllib.parse import quote

    from playwright.sync_api import sync_playwright

    with serve_dashboard(storage) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                    args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1100, "height": 900}, device_scale_factor=1.5)
        page.goto(f"{url}/study/{quote(study, safe='')}")
        page.wait_for_selector("body[data-loaded=true]", timeout=30_000)
        page.wait_for_selector(".front-plot .main-svg", timeout=30_000)
        page.wait_for_function("document.body.dataset.plots !== 'drawing'", timeout=60_000)
        box = page.locator(".front-plot").bounding_box()
        section = page.locator("section", has=page.locator(".front-plot")).bounding_box()
        assert box is not None and section is not None
        page.screenshot(path=str(out), clip={"x": section["x"], "y": section["y"], "width": section["width"],
                                             "height": box["y"] + box["height"] - section["y"]})
        browser.close()


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Photograph a two-objective study's front on the dashboard.")
    parser.add_argument("out", nargs="?", type=Path, default=OUT)
    parser.add_argument("--storage", help="the store of an existing study (else a synthetic one is run)")
    parser.add_argument("--study", default="accuracy-vs-latency")
    args = parser.parse_args()
    print(main(args.out, args.storage, args.study))
