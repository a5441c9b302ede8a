"""What a check says: pass, fail or skip, the evidence, the likely causes and the next step."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

PASS, FAIL, SKIP = "pass", "fail", "skip"


@dataclass
class CheckResult:
    """One check's verdict. ``evidence`` holds the numbers it was decided on."""

    name: str
    status: str
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)
    causes: list[str] = field(default_factory=list)
    next_step: str = ""
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return self.status != FAIL

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class CheckReport:
    """Every check that ran, in order; the ladder stops at the first failure."""

    results: list[CheckResult] = field(default_factory=list)
    baselines: dict[str, float] = field(default_factory=dict)
    metric: str = ""

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    @property
    def failure(self) -> CheckResult | None:
        return next((r for r in self.results if not r.passed), None)
