"""Load an experiment file (a Python file that defines a ``tl.Study``) by its path.

A bottom module: it imports nothing of tuneloop's but ``errors``, so a worker process can import
the file a trial function came from without pulling in ``tuneloop.study`` (and with it the driver,
searchers and schedulers). ``load_study`` finds the file's studies without importing ``Study``
either: a file that made a Study has imported ``tuneloop.study`` itself, so the class is read from
``sys.modules``; when it is not there, the file defines no study.
"""

from __future__ import annotations

import hashlib
import importlib.util
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


def load_module(path: str | Path) -> ModuleType:
    """Import the file at ``path`` (once per process) and return the module."""
    resolved = Path(path).resolve()
    name = module_name(resolved)
    if name in sys.modules:
        return sys.modules[name]
    if not resolved.is_file():
        raise ConfigError(f"Experiment file {str(path)!r} does not exist; pass the path of a .py file.")
    spec = importlib.util.spec_from_file_location(name, resolved)
    if spec is None or spec.loader is None:
        raise ConfigError(f"Cannot import {str(path)!r}: it is not a Python file.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
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
