"""Opening someone's Optuna storage, only through Optuna's own API, and only after checking it is one.

``source`` is a database URL (``sqlite:///optuna.db``, ``postgresql://...``), an SQLite file, or
an Optuna journal file (``JournalFileBackend``). Reading never changes it: an SQLite file is opened
with ``mode=ro`` and Optuna is told not to create tables; a file that is neither an Optuna
database nor a journal is refused in one line before Optuna sees it (Optuna would otherwise add
its tables to it, or create a missing file).
"""

from __future__ import annotations

import json
import urllib.parse
from pathlib import Path
from typing import Any

from tuneloop.errors import ConfigError

OPTUNA_TABLES = frozenset({"studies", "trials", "trial_params", "version_info"})
_SQLITE_MAGIC = b"SQLite format 3\x00"


def optuna_module() -> Any:
    """Optuna, or the one line saying how to install it."""
    try:
        import optuna
    except ImportError:  # pragma: no cover - optuna is a dependency of the searchers
        raise ConfigError("Importing from or exporting to Optuna needs Optuna: pip install optuna") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def where(source: str) -> str:
    """``source`` as a message may show it (a URL without its password)."""
    if "://" not in source:
        return source
    from sqlalchemy.engine import make_url

    try:
        return make_url(source).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparsable URL is shown cut short, never its password
        return source.split("://", 1)[0] + "://..."


def open_for_reading(source: str) -> Any:
    """An Optuna storage reading ``source``; a one-line ConfigError when it is not an Optuna one."""
    optuna = optuna_module()
    if "://" in source:
        url = _sqlite_path(source)
        if url is None:
            _check_tables(source, source)
            return _rdb(optuna, source, source)
        source = url
    path = Path(source)
    if not path.is_file():
        raise ConfigError(f"{source} is not a file; --from takes an Optuna SQLite file, a journal file or a database URL.")
    with path.open("rb") as f:
        head = f.read(len(_SQLITE_MAGIC))
    if head == _SQLITE_MAGIC:
        ro = f"sqlite:///file:{urllib.parse.quote(str(path.resolve()))}?mode=ro&uri=true"
        _check_tables(ro, source)
        return _rdb(optuna, ro, source)
    check_journal(path)
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    try:
        return JournalStorage(JournalFileBackend(str(path)))
    except Exception as exc:  # noqa: BLE001 - anything a malformed journal raises is one line
        raise ConfigError(f"{source} is not a readable Optuna journal ({type(exc).__name__}: {exc!s:.120}).") from None


def close(storage: Any) -> None:
    """Let go of a database storage's pooled connections (a journal file holds none open)."""
    engine = getattr(storage, "engine", None)
    if engine is not None:
        engine.dispose()


def _sqlite_path(url: str) -> str | None:
    """The file of an ``sqlite://`` URL (None for other databases)."""
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:  # noqa: BLE001 - SQLAlchemy raises several kinds for a malformed URL
        raise ConfigError(f"{where(url)} is not a database URL (e.g. sqlite:///optuna.db).") from None
    if parsed.get_backend_name() != "sqlite":
        return None
    if not parsed.database or parsed.database == ":memory:":
        raise ConfigError(f"{url} names no file; give the Optuna database's path: sqlite:///optuna.db.")
    return parsed.database


def _check_tables(url: str, shown: str) -> None:
    """Refuse a database without Optuna's tables (it might be anyone's), by their names only."""
    from sqlalchemy import create_engine, inspect

    try:
        engine = create_engine(url)
        try:
            with engine.connect() as conn:
                names = set(inspect(conn).get_table_names())
        finally:
            engine.dispose()
    except Exception as exc:  # noqa: BLE001 - a missing driver, a refused connection, a corrupt file
        raise ConfigError(f"Cannot open {where(shown)}: {type(exc).__name__}: {str(exc).splitlines()[0]:.160}") from None
    if not names >= OPTUNA_TABLES:
        raise ConfigError(f"{where(shown)} is not an Optuna database (no Optuna tables in it); --from takes the "
                          f"storage an Optuna study was created with.")


def _rdb(optuna: Any, url: str, shown: str) -> Any:
    try:
        return optuna.storages.RDBStorage(url, skip_table_creation=True)
    except Exception as exc:  # noqa: BLE001 - an old schema, a refused connection: one line each
        raise ConfigError(f"Optuna cannot read {where(shown)}: {str(exc).splitlines()[0]:.200}") from None


def check_journal(path: Path, fix: str = "--from takes sqlite:///optuna.db, a database URL, or the file "
                                        "JournalFileBackend wrote.") -> None:
    """The first line of an Optuna journal is a JSON object with an ``op_code``."""
    with path.open("rb") as f:
        first = f.readline(1 << 20)
    try:
        entry = json.loads(first)
    except ValueError:
        entry = None
    if not isinstance(entry, dict) or "op_code" not in entry:
        raise ConfigError(f"{path} is neither an Optuna database nor an Optuna journal file; {fix}")
