"""Ideas to and from YAML (or JSON), so a ledger can be reviewed, versioned and shared.

An ideas file may come from anyone (a mailing list, a colleague), so importing one is bounded
and all-or-nothing: the file is read up to ``MAX_BYTES``; YAML goes through ``yaml.SafeLoader``
(plain data only, no Python objects); aliases are measured before any object is built, by a
walk over the composed node graph that counts every alias as a full copy of what it names, and
a file whose data would be larger than ``MAX_BYTES`` once its aliases are expanded, or whose
aliases refer to themselves, is refused (a few hundred bytes of nested aliases can otherwise
stand for gigabytes, which a later ``json.dumps`` of a config would write out). Every entry is
checked before anything is written, and the ideas are added in one transaction.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tuneloop.errors import ConfigError
from tuneloop.ideas._ledger import ESTIMATES, STATES, Ledger

FIELDS = ("title", "state", "hours", "complexity", "gain", "p", "tags", "actual_hours", "note", "config")
DEFAULTS = {"hours": 1.0, "complexity": 1, "gain": 0.0, "p": 0.2, "state": "proposed"}  # as a title-only idea gets
MAX_BYTES = 1 << 20  # 1 MiB: thousands of ideas; the limit for the file and for its data with aliases expanded


def export_yaml(ledger: Ledger) -> str:
    import yaml

    return yaml.safe_dump({"ideas": [{k: i.to_dict()[k] for k in ("id", *FIELDS)} for i in ledger.ideas()]},
                          sort_keys=False, allow_unicode=True)


def import_yaml(ledger: Ledger, path: str | Path) -> int:
    """Add every idea in the file (as new ideas; their states and notes kept); returns how many.
    Every entry is checked first, and they are written in one transaction: all or none."""
    data = read_ideas_file(path)
    items = data.get("ideas") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise ConfigError(f"{path} must hold 'ideas:' followed by a list of ideas (see tuneloop idea export).")
    try:
        entries = [check_entry(n, item, path) for n, item in enumerate(items, 1)]
    except RecursionError:
        raise ConfigError(f"Cannot read ideas from {path}: a config is nested too deeply.") from None
    return len(ledger.add_all(entries))


def read_ideas_file(path: str | Path) -> Any:
    """The data of a YAML or JSON (``.json``) ideas file, within the size limits."""
    import yaml

    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"Cannot read ideas from {path}: {exc.strerror or exc}.") from None
    if len(raw) > MAX_BYTES:
        raise ConfigError(f"{path} is larger than {MAX_BYTES // 1024} KiB, more than an ideas file needs; split it.")
    try:
        text = raw.decode("utf-8-sig")
        return json.loads(text) if str(path).endswith(".json") else _safe_load(text, str(path))
    except ConfigError:
        raise
    except UnicodeDecodeError:
        raise ConfigError(f"Cannot read ideas from {path}: it is not UTF-8 text.") from None
    except RecursionError:
        raise ConfigError(f"Cannot read ideas from {path}: it is nested too deeply.") from None
    except (ValueError, yaml.YAMLError) as exc:  # JSON errors are ValueErrors, as are too-long integers
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"Cannot read ideas from {path}: {first}") from None


def _safe_load(text: str, where: str) -> Any:
    """``yaml.safe_load``, but the node graph is measured before it becomes Python objects."""
    import yaml

    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_size(node, {}, set()) > MAX_BYTES:
            raise ConfigError(f"{where} uses YAML aliases that expand past {MAX_BYTES // 1024} KiB of data; "
                              f"write the ideas out without anchors (tuneloop idea export does).")
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _expanded_size(node: Any, sizes: dict[int, int], open_: set[int]) -> int:
    """About how many characters ``node``'s data holds with every alias copied out. Each node is
    measured once (``sizes``), so the walk costs what the file is long, not what it expands to."""
    import yaml

    key = id(node)
    if key in sizes:
        return sizes[key]
    if key in open_:
        raise ConfigError("The YAML refers to itself through an alias (an endless structure); remove that alias.")
    open_.add(key)
    if isinstance(node, yaml.ScalarNode):
        size = len(node.value) + 2
    elif isinstance(node, yaml.MappingNode):  # value: a list of (key node, value node)
        size = 2 + sum(_expanded_size(k, sizes, open_) + _expanded_size(v, sizes, open_) for k, v in node.value)
    else:
        size = 2 + sum(_expanded_size(child, sizes, open_) for child in node.value)
    open_.discard(key)
    sizes[key] = size
    return size


def check_entry(n: int, item: Any, path: str | Path) -> dict[str, Any]:
    """Idea ``n`` of the file, checked field by field; a one-line ConfigError naming the entry and
    the field otherwise. Unknown fields are refused too (a misspelt ``hour:`` would be lost)."""
    if not isinstance(item, Mapping):
        raise ConfigError(f"Idea {n} in {path} is {type(item).__name__} {item!r:.60}, not a mapping of fields "
                          f"(title, hours, complexity, gain, p, ...).")
    title = item.get("title")
    where = f"Idea {n} ({title!r:.60}) in {path}" if isinstance(title, str) else f"Idea {n} in {path}"
    if "title" not in item:
        raise ConfigError(f"{where} needs at least a title (and hours, complexity, gain, p); it has no 'title'.")
    unknown = [k for k in item if k not in (*FIELDS, "id")]
    if unknown:
        raise ConfigError(f"{where} has an unknown field {str(unknown[0])!r:.60}; the fields are "
                          f"{', '.join(FIELDS)} (and id, which is ignored).")
    entry = {k: item.get(k) for k in FIELDS}
    entry.update({k: v for k, v in DEFAULTS.items() if entry[k] is None})
    for field, (expected, ok) in _CHECKS.items():
        if not ok(entry[field]):
            raise ConfigError(f"{where}: {field!r} must be {expected}; got {entry[field]!r:.60}.")
    return entry


def _plain(value: Any) -> bool:
    """JSON-safe data: text, finite numbers, booleans, None, lists and text-keyed mappings of them."""
    from tuneloop.ideas._ledger import finite

    if value is None or isinstance(value, (str, bool)):
        return True
    if isinstance(value, (int, float)):
        return finite(value)
    if isinstance(value, list):
        return all(_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    return False


_CHECKS = {
    "title": ("a non-empty text", lambda v: isinstance(v, str) and bool(v.strip())),
    **{k: ESTIMATES[k] for k in ("hours", "complexity", "gain", "p", "actual_hours")},
    "state": (f"one of {', '.join(STATES)}", lambda v: v in STATES),
    "tags": ("a list of texts", lambda v: v is None or (isinstance(v, list) and all(isinstance(t, str) for t in v))),
    "note": ("a text", lambda v: v is None or isinstance(v, str)),
    "config": ("a mapping of names to plain values (text, finite numbers, booleans, lists)",
               lambda v: v is None or (isinstance(v, dict) and _plain(v))),
}
