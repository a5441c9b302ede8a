"""Load an experiment file (a Python file that defines a ``tl.Study``) by its path.

A bottom module: it imports nothing of tuneloop's but ``errors``, so a worker process can import
the file a trial function came from without pulling in ``tuneloop.study`` (and with it the driver,
searchers and schedulers). ``load_study`` finds the file's studies without importing ``Study``
either: a file that made a Study has imported ``tuneloop.study`` itself, so the class is read from
``sys.modules``; when it is not there, the file defines no study.

Pins: a caller that has checked a file's sha256 (the queue runner before it starts a signed job,
``trusted_experiment`` before ``finalize``/``refine`` import a stored path) pins the file to that digest.
``load_module`` then reads the file once, hashes those bytes and runs exactly them, so a file swapped
between the check and the import is refused instead of run. Pins travel to child processes (trial
workers, a queued job's command) in the ``TUNELOOP_PINNED`` environment variable.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from tuneloop.errors import ConfigError

if TYPE_CHECKING:
    from tuneloop.study import Study


def module_name(path: str | Path) -> str:
    """The module name an experiment file is imported under (the same in every worker, so a
    trial function defined there pickles by reference)."""
    resolved = Path(path).resolve()
    digest = hashlib.sha1(str(resolved).encode()).hexdigest()[:8]
    stem = "".join(c if c.isalnum() else "_" for c in resolved.stem)
    return f"tuneloop_experiment_{stem}_{digest}"


PINNED = "TUNELOOP_PINNED"  # JSON {resolved path: sha256} of the files this process may import only unchanged


def pins() -> dict[str, str]:
    """The files pinned in this process (inherited or pinned here): resolved path -> sha256."""
    try:
        found = json.loads(os.environ.get(PINNED) or "{}")
    except ValueError:
        raise ConfigError(f"{PINNED} is not JSON; unset it (tuneloop sets it for the processes it starts).") from None
    if not isinstance(found, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in found.items()):
        raise ConfigError(f"{PINNED} must map file paths to sha256 digests; unset it.")
    return found


def pin(path: str | Path, sha256: str) -> None:
    """Import ``path`` from now on (here and in the processes started from here) only while its content
    has this sha256."""
    os.environ[PINNED] = json.dumps({**pins(), str(Path(path).absolute()): sha256, str(Path(path).resolve()): sha256})


def pinned_env(files: dict[str, str], env: dict[str, str] | None = None) -> dict[str, str]:
    """A child's environment (``env`` or this process's) with ``files`` (path -> sha256) pinned too."""
    base = dict(os.environ if env is None else env)
    try:
        inherited = json.loads(base.get(PINNED) or "{}")
    except ValueError:
        inherited = {}
    inherited = inherited if isinstance(inherited, dict) else {}
    # by the path as named and as resolved: a symlink re-pointed after the check is looked up as named
    named = {str(Path(p).absolute()): d for p, d in files.items()}
    base[PINNED] = json.dumps({**inherited, **named, **{str(Path(p).resolve()): d for p, d in files.items()}})
    return base


def load_module(path: str | Path) -> ModuleType:
    """Import the file at ``path`` (once per process) and return the module; a pinned file is
    imported only when the bytes read, which are the bytes run, have the pinned sha256."""
    resolved = Path(path).resolve()
    name = module_name(resolved)
    if name in sys.modules:
        return sys.modules[name]
    if not resolved.is_file():
        raise ConfigError(f"Experiment file {str(path)!r} does not exist; pass the path of a .py file.")
    spec = importlib.util.spec_from_file_location(name, resolved)
    if spec is None or spec.loader is None:
        raise ConfigError(f"Cannot import {str(path)!r}: it is not a Python file.")
    try:
        source = resolved.read_bytes()  # read once: what is checked is what runs
    except OSError as exc:
        raise ConfigError(f"Cannot read {str(path)!r}: {exc.strerror or exc}.") from None
    found = pins()
    expected = found.get(str(Path(path).absolute()), found.get(str(resolved)))  # as named first: a re-pointed symlink
    if expected is not None and hashlib.sha256(source).hexdigest() != expected:
        raise ConfigError(f"{str(path)!r} changed after tuneloop checked it (its sha256 is not the one vouched for), so "
                          f"it is not imported; if you meant the change, queue or run the job again.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        exec(compile(source, str(resolved), "exec", dont_inherit=True), module.__dict__)  # the user's own file, as checked
    except SyntaxError as exc:
        del sys.modules[name]
        raise ConfigError(f"Cannot load {path}: SyntaxError at line {exc.lineno}: {exc.msg}.") from exc
    except Exception as exc:
        del sys.modules[name]
        raise ConfigError(f"Cannot load {path}: it raised {type(exc).__name__}: {exc}") from exc
    return module


def load_study(path: str | Path, name: str | None = None) -> Study:
    """Return the Study an experiment file defines (the one called ``name`` if it has several)."""
    module = load_module(path)
    study_module = sys.modules.get("tuneloop.study")  # loaded by the file itself if it made a Study
    kind = getattr(study_module, "Study", None)
    found: dict[str, Study] = {var: obj for var, obj in vars(module).items() if kind is not None and isinstance(obj, kind)}
    if not found:
        raise ConfigError(
            f"{path} does not define a study: add, at top level, "
            f"study = tl.Study('name', space, train, metric='val_loss', mode='min')."
        )
    if name is not None:
        by_name = [s for s in found.values() if s.name == name]
        if not by_name:
            names = ", ".join(sorted(s.name for s in found.values()))
            raise ConfigError(f"{path} defines no study named {name!r}; it defines: {names}.")
        study = by_name[0]
    elif len(found) == 1:
        study = next(iter(found.values()))
    elif "study" in found:
        study = found["study"]
    else:
        names = ", ".join(sorted(s.name for s in found.values()))
        raise ConfigError(f"{path} defines several studies ({names}); choose one with --study NAME.")
    study.experiment_path = str(Path(path).resolve())
    return study
