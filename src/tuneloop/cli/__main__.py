"""``python -m tuneloop.cli``: the ``tuneloop`` command."""

from tuneloop.cli import app

app()
