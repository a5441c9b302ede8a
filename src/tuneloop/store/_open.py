"""Reaching a database: from what a user typed (a path or a URL) to an engine, and every
connection opened through :class:`Guard`, which turns driver errors into ones that say what to do.

Refusals happen before anything is touched: a path that cannot be written, a URL that is not
one, a missing driver, a file a reading command would have to create.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

from sqlalchemy import create_engine
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError

from tuneloop.errors import ConfigError, StorageError
from tuneloop.store import schema
from tuneloop.store._retry import Unavailable, transient

DEFAULT_URL = "tuneloop.db"  # a path: resolved against the working directory


def resolve_url(storage: str | os.PathLike[str] | None) -> str:
    """``None`` -> $TUNELOOP_STORAGE or ./tuneloop.db; a bare path -> an SQLite URL."""
    if storage is None:
        storage = os.environ.get("TUNELOOP_STORAGE") or DEFAULT_URL
    storage = os.fspath(storage)
    if "://" not in storage:
        # a URL's path is percent-decoded: a % ? or # in a file name is written encoded, so it stays in it
        path = str(Path(storage).expanduser().resolve())
        storage = "sqlite:///" + path.replace("%", "%25").replace("?", "%3F").replace("#", "%23")
    return storage


def check_sqlite_path(url: str, database: str | None) -> None:
    """Fail before touching anything when an SQLite file cannot be created or written."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database).expanduser()
    folder = path.resolve().parent if path.parent != Path("") else Path.cwd()
    how = "pass --storage with a writable path, e.g. --storage sqlite:///./tuneloop.db"
    if path.exists() and (path.is_dir() or not os.access(path, os.R_OK | os.W_OK)):
        raise StorageError(f"Cannot open the store {url}: {path} is not a writable file; {how}.")
    if not path.exists():
        if not folder.is_dir():
            raise StorageError(f"Cannot create the store {url}: folder {folder} does not exist; {how}.")
        if not os.access(folder, os.W_OK):
            raise StorageError(f"Cannot create the store {url}: folder {folder} is not writable; {how}.")


def parse_url(url: str) -> URL:
    """The parsed URL; a StorageError saying what a database URL looks like when it is not one."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as exc:
        raise StorageError(f"{url!r} is not a database URL ({exc}); pass --storage with an SQLite path or a URL "
                           f"such as sqlite:///tuneloop.db.") from None
    if parsed.get_backend_name() == "sqlite" and (parsed.host or parsed.username or parsed.password or parsed.port):
        raise StorageError(f"{url!r} is not a database URL (an SQLite URL names no host: three slashes, then the "
                           f"path); pass --storage with an SQLite path or a URL such as sqlite:///tuneloop.db.")
    return parsed


def read_only_sqlite(parsed: URL) -> URL:
    """The URL that opens the SQLite file with ``mode=ro``: nothing written, nothing created."""
    database = parsed.database or ":memory:"
    if database.startswith("file:"):  # already an SQLite URI: only add read-only to it
        return parsed.set(query={**parsed.query, "mode": "ro", "uri": "true"})
    path = Path(database).expanduser()
    if database == ":memory:" or not path.exists():
        raise StorageError(f"No tuneloop database at {database}; reading never creates one: start one with tuneloop "
                           f"run FILE or tuneloop demo, or pass --storage with an existing database.")
    if not path.is_file():
        raise StorageError(f"{path} is not a database file but a folder; pass --storage with a tuneloop database.")
    # an SQLite URI: %, ? and # in the path must be percent-encoded, or they would end the file name
    return parsed.set(database=f"file:{quote(str(path.resolve()), safe='/')}", query={"mode": "ro", "uri": "true"})


def make_engine(url: str, parsed: URL, read_only: bool) -> Engine:
    """The engine for ``parsed``; PostgreSQL sessions of a read-only store refuse writes server-side."""
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if parsed.get_backend_name() == "sqlite":
        kwargs = {"connect_args": {"timeout": 30}}
    elif read_only and parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() in ("psycopg", "psycopg2"):
        kwargs["connect_args"] = {"options": "-c default_transaction_read_only=on"}  # the server refuses writes
    try:
        return create_engine(parsed, **kwargs)
    except (NoSuchModuleError, ImportError) as exc:
        hint = " pip install 'tuneloop[postgres]'" if parsed.get_backend_name() == "postgresql" else ""
        raise StorageError(f"Cannot open {url}: its database driver is missing ({exc}).{hint}") from None
    except ArgumentError as exc:
        raise StorageError(f"{url!r} is not a database URL ({cause(exc)}); pass --storage with an SQLite path or "
                           f"a URL such as sqlite:///tuneloop.db.") from None


def sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    """Every SQLite connection: WAL (readers never block the writer), a power cut may lose the last
    commits but never corrupts the file, and foreign keys enforced."""
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def not_ours(where: str, names: Sequence[str]) -> str:
    """The message refusing a database that holds another program's tables (or none)."""
    shown = ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
    has = f"it has tables {shown}" if names else "it has no tables"
    return f"{where} is not a tuneloop database ({has}); pass --storage with a tuneloop database."


def schema_version(raw: Any, where: str) -> int:
    """The stored schema version as an int; a StorageError naming the row to repair when it is not one."""
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise StorageError(f"{where} has a corrupt schema version {raw!r:.40} in table tuneloop_meta (a whole number "
                           f"such as {schema.SCHEMA_VERSION} is expected); repair that row.") from None


class Guard:
    """A connection or transaction (``open_``: ``engine.connect`` or ``engine.begin``) whose driver
    errors become StorageError naming the store and the cause (:class:`Unavailable` when waiting
    may help, which is what :func:`~tuneloop.store._retry.retrying` retries)."""

    def __init__(self, url: str, open_: Callable[[], Any], verb: str) -> None:
        self.url, self.open, self.verb = url, open_, verb

    def __enter__(self) -> Any:
        try:
            self.ctx = self.open()  # connecting may fail too: inside the guard
            return self.ctx.__enter__()
        except SQLAlchemyError as exc:
            raise self._error(exc) from None

    def __exit__(self, *exc_info: object) -> Literal[False]:
        try:
            self.ctx.__exit__(*exc_info)
        except SQLAlchemyError as exc:
            raise self._error(exc) from None
        if isinstance(exc_info[1], SQLAlchemyError):
            raise self._error(exc_info[1]) from None
        if isinstance(exc_info[1], OverflowError):  # an integer the driver cannot bind (past 64 bits)
            raise ConfigError(f"A number is too large for the store {self.url} ({exc_info[1]}); "
                              f"ids, trial numbers and seeds are 64-bit integers.") from None
        return False

    def _error(self, exc: SQLAlchemyError) -> StorageError:
        kind = Unavailable if transient(exc) else StorageError
        return kind(f"Cannot {self.verb} the store {self.url}: {cause(exc)}.")


def cause(exc: BaseException) -> str:
    """The first line of what the database said (the driver's own message, not SQLAlchemy's wrapper)."""
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        return str(exc.orig).splitlines()[0]
    return str(exc).splitlines()[0]
