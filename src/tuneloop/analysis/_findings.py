"""A check's result: what every ``tuneloop analyze`` check returns (a bottom module of analysis)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

VERDICTS = ("ok", "info", "warn", "problem")


@dataclass
class Finding:
    """One check's verdict, the evidence and what to do."""

    check: str
    verdict: str
    summary: str
    recommendation: str = ""
    evidence: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
