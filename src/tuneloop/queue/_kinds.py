"""What a job may run: the allowlisted kinds, their arguments, and the signature that vouches for them.

Each kind is one tuneloop subcommand; a job runs as ``python -P -m tuneloop.cli <subcommand> <args>``,
the arguments passed as a list (no shell). The database is untrusted (it may come from someone else) and
running a job imports the experiment file it names, so ``queue add`` signs the job: an HMAC, under
this user's trust key (``tuneloop.experiment``), of its kind, its arguments and the sha256 of every
file they name. A runner runs a job only when that signature verifies and every file still has its
hash (:func:`refusal` says why not, in one line).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tuneloop.errors import ConfigError
from tuneloop.experiment import file_sha256, sign, signed

PURPOSE = "tuneloop-job-v1"  # what a job's signature means, and nothing else


@dataclass(frozen=True)
class Kind:
    """A kind of job: the subcommand it runs, the arguments that come first (``FILE`` ones name
    files), the values a first argument may take, and the options whose value is a file."""

    command: tuple[str, ...]
    positionals: tuple[str, ...]
    choices: dict[int, tuple[str, ...]] = field(default_factory=dict)
    file_options: tuple[str, ...] = ()
    integers: tuple[int, ...] = ()  # positionals that are whole numbers (an idea's id)

    def usage(self, name: str) -> str:
        first = " ".join("{" + ",".join(self.choices[i]) + "}" if i in self.choices else p
                         for i, p in enumerate(self.positionals))
        return f"tuneloop queue add {name} {first} [OPTIONS of tuneloop {' '.join(self.command)}]"


KINDS: dict[str, Kind] = {
    "run": Kind(("run",), ("FILE",)),
    "idea-test": Kind(("idea", "test"), ("ID", "FILE"), file_options=("--variant",), integers=(0,)),
    "finalize": Kind(("finalize",), ("STUDY",), file_options=("--file",)),
    "probe": Kind(("probe",), ("WHICH", "FILE"), choices={0: ("lr", "batch", "data")}),
    "check": Kind(("check",), ("FILE",)),
}
_FORBIDDEN = {"--storage": "a job's storage is the queue's database; drop --storage (pass it to queue add instead)",
              "--help": "a job cannot ask for help; see tuneloop COMMAND --help"}


def kind_of(name: str) -> Kind:
    """The kind called ``name``; a one-line ConfigError naming the kinds there are."""
    kind = KINDS.get(name)
    if kind is None:
        raise ConfigError(f"{name!r:.40} is not a kind of job; one of {', '.join(KINDS)} (e.g. tuneloop queue add run "
                          f"exp.py --trials 20).")
    return kind


def check_args(name: str, args: Sequence[str]) -> list[str]:
    """The files a job of kind ``name`` with ``args`` names, after checking its arguments' shape: its
    positionals first, allowed values, no ``--storage``; a one-line ConfigError with the usage."""
    kind = kind_of(name)
    n = len(kind.positionals)
    first = list(args[:n])
    if len(first) < n or any(a.startswith("-") for a in first):
        raise ConfigError(f"A {name} job takes {' '.join(kind.positionals)} first: {kind.usage(name)}.")
    for i, allowed in kind.choices.items():
        if first[i] not in allowed:
            raise ConfigError(f"A {name} job's {kind.positionals[i]} is one of {', '.join(allowed)}, not "
                              f"{first[i]!r:.40}: {kind.usage(name)}.")
    for i in kind.integers:
        if not (first[i].isascii() and first[i].isdigit()):
            raise ConfigError(f"A {name} job's {kind.positionals[i]} is a whole number, not {first[i]!r:.40}.")
    for arg in args:
        flag = arg.split("=", 1)[0]
        if flag in _FORBIDDEN:
            raise ConfigError(f"{flag} is not allowed in a job: {_FORBIDDEN[flag]}.")
    files = [first[i] for i, p in enumerate(kind.positionals) if p == "FILE"]
    for option in kind.file_options:
        value = _option(args[n:], option)
        if value is not None and (option != "--variant" or value.endswith(".py")):  # --variant: overrides or a file
            files.append(value)
    return files


def prepare(name: str, args: Sequence[str]) -> list[str]:
    """``args`` as a job stores them: every file they name made absolute (a runner may start elsewhere)
    and checked to be a regular file; a one-line ConfigError otherwise."""
    files, options = set(check_args(name, args)), kind_of(name).file_options
    out = []
    for arg in args:
        flag, eq, value = arg.partition("=")
        if arg in files:
            out.append(_absolute(arg))
        elif eq and flag in options and value in files:
            out.append(f"{flag}={_absolute(value)}")
        else:
            out.append(arg)
    return out


def _absolute(path: str) -> str:
    resolved = Path(path).expanduser().resolve()
    if not resolved.is_file():
        raise ConfigError(f"No file {path!r} (looked at {str(resolved)!r}); give the path of an existing file.")
    return str(resolved)


def _option(args: Sequence[str], *names: str) -> str | None:
    """The value of the last of ``names`` in ``args`` (``--x v`` or ``--x=v``), or None."""
    found = None
    for i, arg in enumerate(args):
        flag, eq, value = arg.partition("=")
        if eq and flag in names:
            found = value
        elif arg in names and i + 1 < len(args):
            found = args[i + 1]
    return found


def _parts(name: str, args: Sequence[str], files: dict[str, str]) -> list[str]:
    return [name, json.dumps(list(args)), json.dumps(sorted(files.items()))]


def sign_job(name: str, args: Sequence[str]) -> tuple[dict[str, str], str | None]:
    """The files a job names with their sha256, and this user's signature of the job (None when no
    key can be made: then no runner runs it)."""
    files = {}
    for path in check_args(name, args):
        digest = file_sha256(Path(path))
        if digest is None:
            raise ConfigError(f"{path!r} is not a readable regular file; give the path of an experiment file.")
        files[path] = digest
    return files, sign(PURPOSE, _parts(name, args, files))


def refusal(name: str, args: Sequence[str], files: dict[str, str], signature: str | None) -> str | None:
    """Why a stored job must not run (one line), or None when this user signed it and its files are
    unchanged. No file is read unless the signature verifies."""
    try:
        named = check_args(name, args)
    except ConfigError as exc:
        return f"refused: {exc}"
    if not signed(signature, PURPOSE, _parts(name, args, files)):
        return ("refused: this user did not queue it on this machine (no valid signature: the database may come from "
                "elsewhere); add it again with tuneloop queue add")
    if set(named) != set(files):
        return "refused: the files it names are not the files it was signed with; add it again with tuneloop queue add"
    for path, digest in files.items():
        now = file_sha256(Path(path))
        if now is None:
            return f"refused: {path} is gone; add the job again with tuneloop queue add"
        if now != digest:
            return (f"refused: {path} changed since the job was queued; add it again (tuneloop queue add) to run the "
                    f"file as it is now")
    return None


def command(name: str, args: Sequence[str]) -> list[str]:
    """The process a job runs: this Python running tuneloop's command line (no shell). ``-P``: the
    runner's current folder is not put first on ``sys.path`` (as ``-m`` would), so a ``numpy.py``
    planted where the runner was started is never imported; the job imports what ``tuneloop`` on
    the command line would."""
    return [sys.executable, "-P", "-m", "tuneloop.cli", *kind_of(name).command, *args]


def title(name: str, args: Sequence[str]) -> str:
    """A job's default title: its kind and arguments, files by their names."""
    files = set(check_args(name, args))
    return " ".join([name, *(Path(a).name if a in files else a for a in args)])
