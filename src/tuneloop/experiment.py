"""Vouch for the experiment file a study ran from (loading one lives in ``tuneloop._load``;
``load_module``, ``load_study`` and ``module_name`` are re-exported here, where they always were).

A database is untrusted (it may come from someone else), so the experiment path it stores is never
imported on its word alone. When a study runs from a file, the study records the file's path, its
content hash and a signature: an HMAC of both under a secret key kept in this user's config folder
(``$XDG_CONFIG_HOME/tuneloop/trust.key``, created on first use, mode 0600), as Jupyter signs the
notebooks a user ran. A command that would import the stored path (``finalize`` and ``refine``
without ``--file``) does so only when the signature verifies with this user's key and the file still
has that hash; otherwise it stops and asks for ``--file PATH``. A machine id such as the host name
would not do: whoever writes the database can write it too, and users of a shared machine share it.
The same key signs other things a database could ask to run (:func:`sign`, :func:`signed`): the
queue's jobs (``tuneloop.queue``), each under its own purpose so one signature never vouches for another.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tuneloop._load import load_module, load_study, module_name, pin
from tuneloop.errors import ConfigError

__all__ = ["experiment_record", "file_sha256", "load_module", "load_study", "module_name", "sign", "signed",
           "trusted_experiment"]


# -- vouching for the file a study ran from -----------------------------------------------------
_SIGNED = "tuneloop-experiment-v1"  # the signed message's prefix: a signature means this and nothing else


def experiment_record(path: str | None) -> dict[str, str | None]:
    """What a study stores about the experiment file it runs from: the path, the sha256 of its
    content and this user's signature of both (None where it cannot be made: then the stored path
    is never imported without ``--file``)."""
    if path is None:
        return {"experiment": None}
    digest = file_sha256(Path(path))
    key = _trust_key(create=True)
    signature = None if key is None or digest is None else _sign(key, path, digest)
    return {"experiment": path, "experiment_sha256": digest, "experiment_signature": signature}


def trusted_experiment(config: Mapping[str, Any], study: str) -> str | None:
    """The stored experiment path of ``study`` when this user recorded running it and the file is
    unchanged; None when it stores none; else a one-line ConfigError with the ``--file`` fix.
    The file is not even read unless the signature verifies."""
    path = config.get("experiment")
    if path is None:
        return None
    fix = "pass --file PATH naming the experiment file you mean to run"
    digest, signature = config.get("experiment_sha256"), config.get("experiment_signature")
    key = _trust_key(create=False)
    if (key is None or not isinstance(path, str) or not isinstance(digest, str) or not isinstance(signature, str)
            or not _same(_sign(key, path, digest), signature)):
        raise ConfigError(f"Study {study!r} names the experiment file {str(path)!r}, but this machine did not record "
                          f"running it (the database may come from elsewhere), so tuneloop will not import it; {fix}.")
    now = file_sha256(Path(path))
    if now is None:
        raise ConfigError(f"The experiment file {path!r} of study {study!r} is gone; {fix}.")
    if not _same(now, digest):
        raise ConfigError(f"The experiment file {path!r} of study {study!r} changed since this machine ran it, so it "
                          f"is not imported on the database's word; {fix}.")
    pin(path, now)  # what is imported next is the content just checked, not a file swapped in meanwhile
    return path


def sign(purpose: str, parts: list[str]) -> str | None:
    """This user's signature of ``parts`` for ``purpose`` (a versioned name such as ``"tuneloop-job-v1"``, so a
    signature made for one thing never vouches for another); None when no key can be read or made."""
    key = _trust_key(create=True)
    return None if key is None else _sign_parts(key, purpose, parts)


def signed(signature: object, purpose: str, parts: list[str]) -> bool:
    """Whether ``signature`` is this user's :func:`sign` of ``parts`` for ``purpose`` (constant-time)."""
    key = _trust_key(create=False)
    return key is not None and isinstance(signature, str) and _same(_sign_parts(key, purpose, parts), signature)


def _sign_parts(key: bytes, purpose: str, parts: list[str]) -> str:
    # a JSON list: unambiguous whatever the parts hold, and never the experiment signature's message
    message = json.dumps([purpose, *parts], ensure_ascii=True).encode("ascii")
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def file_sha256(path: Path) -> str | None:
    """The sha256 of a regular file's content (None when it is not one: a FIFO or device would
    block or never end)."""
    try:
        if not path.is_file():
            return None
        digest = hashlib.sha256()
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()
    except OSError:
        return None


def _same(a: str, b: str) -> bool:
    """Constant-time equality of two strings (compare_digest takes only ASCII str)."""
    return hmac.compare_digest(a.encode("utf-8", "surrogatepass"), b.encode("utf-8", "surrogatepass"))


def _sign(key: bytes, path: str, digest: str) -> str:
    message = f"{_SIGNED}\0{path}\0{digest}".encode("utf-8", "surrogatepass")
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def _key_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "tuneloop" / "trust.key"


def _trust_key(create: bool) -> bytes | None:
    """This user's signing key; made on first use when ``create``. None when it cannot be read or
    made (a read-only home): nothing is vouched for then, which only costs a ``--file``."""
    path = _key_path()
    try:
        key = bytes.fromhex(path.read_text(encoding="ascii").strip())
        return key if len(key) == 32 else None
    except FileNotFoundError:
        if not create:
            return None
    except (OSError, ValueError):
        return None
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(secrets.token_hex(32))
        try:
            os.link(tmp, path)  # whole or absent: two processes making the key at once keep the first
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    except OSError:
        return None
    return _trust_key(create=False)
