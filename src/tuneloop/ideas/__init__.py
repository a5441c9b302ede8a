"""The ideas ledger: estimates, priority, A/B tests over seeds, decisions and calibration."""

from tuneloop.ideas._abtest import ab_test, parse_overrides
from tuneloop.ideas._calibration import Calibration, calibration
from tuneloop.ideas._catalog import CATALOG
from tuneloop.ideas._io import export_yaml, import_yaml
from tuneloop.ideas._ledger import PRIORITY_FORMULA, STATES, Idea, Ledger, priority
from tuneloop.ideas._stats import Comparison, compare, power, seeds_needed

__all__ = [
    "CATALOG",
    "Calibration",
    "Comparison",
    "Idea",
    "Ledger",
    "PRIORITY_FORMULA",
    "STATES",
    "ab_test",
    "calibration",
    "compare",
    "export_yaml",
    "import_yaml",
    "parse_overrides",
    "power",
    "priority",
    "seeds_needed",
]
