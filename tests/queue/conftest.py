"""Fixtures of the queue's runner tests: the command line in process, and experiment files whose
trial meets the other jobs' trials at a rendezvous (a folder of files), so jobs provably overlap."""

import json
import textwrap
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

# one study per file, one trial each: it writes ``<study>.started`` (holding the CUDA_VISIBLE_DEVICES it
# sees) into $RENDEZVOUS, then waits until $MEET such files exist and, with $HOLD set, until a file
# ``release`` exists; after 60 s of waiting it fails, so a test whose jobs never meet fails, never hangs
MEETING = """
    import os, time
    import tuneloop as tl

    def objective(trial):
        where = os.environ["RENDEZVOUS"]
        mine = os.path.join(where, "{name}.started")
        with open(mine + ".tmp", "w") as f:
            f.write(os.environ.get("CUDA_VISIBLE_DEVICES", "-"))
        os.replace(mine + ".tmp", mine)
        deadline = time.time() + 60
        while (sum(n.endswith(".started") for n in os.listdir(where)) < int(os.environ.get("MEET", "0"))
               or (os.environ.get("HOLD") and not os.path.exists(os.path.join(where, "release")))):
            if time.time() > deadline:
                raise RuntimeError("the other jobs never came")
            time.sleep(0.02)
        return {{"loss": trial.params.x}}

    study = tl.Study("{name}", tl.Space(x=tl.Float(0.0, 1.0)), objective, metric="loss", mode="min",
                     searcher="random", executor="inline")
"""


@pytest.fixture
def meeting(tmp_path, monkeypatch):
    """(experiment files s0..s3, the rendezvous folder); the trials meet in it (set MEET, HOLD)."""
    where = tmp_path / "rendezvous"
    where.mkdir()
    monkeypatch.setenv("RENDEZVOUS", str(where))
    paths = []
    for n in range(4):
        path = tmp_path / f"meet{n}.py"
        path.write_text(textwrap.dedent(MEETING.format(name=f"s{n}")))
        paths.append(path)
    return paths, where


@pytest.fixture
def queue(cli, tmp_path):
    """queue(*files) queues a one-trial run job of each into q.db; returns the database's path."""
    db = tmp_path / "q.db"

    def add(*paths):
        for path in paths:
            result = cli("queue", "add", "run", path, "--trials", 1, "--storage", db)
            assert result.exit_code == 0 and "Queued job" in result.output, result.output
        return db

    return add


class _Hook(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with self.server.seen_lock:
            self.server.seen.append((self.path, self.headers["Content-Type"], json.loads(body)))
        self.send_response(404 if self.path.endswith("/gone") else 200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


@pytest.fixture
def hook():
    """A webhook receiver on 127.0.0.1: (its base URL, the requests it received: (path, type, JSON))."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    server.seen, server.seen_lock = [], threading.Lock()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", server.seen
    server.shutdown()
    server.server_close()
    thread.join()
