"""Ideas to and from YAML, so a ledger can be reviewed, versioned and shared."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tuneloop.errors import ConfigError
from tuneloop.ideas._ledger import Ledger

FIELDS = ("title", "state", "hours", "complexity", "gain", "p", "tags", "actual_hours", "note", "config")


def export_yaml(ledger: Ledger) -> str:
    import yaml

    return yaml.safe_dump({"ideas": [{k: i.to_dict()[k] for k in ("id", *FIELDS)} for i in ledger.ideas()]},
                          sort_keys=False, allow_unicode=True)


def import_yaml(ledger: Ledger, path: str | Path) -> int:
    """Add every idea in the file (as new ideas; their states and notes kept); returns how many."""
    import yaml

    try:
        data: Any = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"Cannot read ideas from {path}: {exc}") from None
    items = data.get("ideas") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise ConfigError(f"{path} must hold 'ideas:' followed by a list of ideas (see tuneloop idea export).")
    count = 0
    for n, item in enumerate(items, 1):
        if not isinstance(item, dict) or "title" not in item:
            raise ConfigError(f"Idea {n} in {path} needs at least a title (and hours, complexity, gain, p).")
        try:
            idea = ledger.add(item["title"], hours=item.get("hours", 1.0), complexity=item.get("complexity", 1),
                              gain=item.get("gain", 0.0), p=item.get("p", 0.2), tags=item.get("tags"),
                              config=item.get("config"))
        except ConfigError as exc:
            raise ConfigError(f"Idea {n} ({item['title']!r}) in {path}: {exc}") from None
        state = item.get("state", "proposed")
        if state == "testing":
            ledger.start(idea.id)
        elif state in ("adopted", "rejected", "parked"):
            ledger.decide(idea.id, {"adopted": "adopt", "rejected": "reject", "parked": "park"}[state],
                          note=item.get("note"), actual_hours=item.get("actual_hours"))
        count += 1
    return count
