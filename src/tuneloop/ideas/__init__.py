"""The ideas ledger: estimates, priority, A/B tests over seeds, decisions and calibration."""

from tuneloop.ideas._abtest import VariantBroken, ab_test, arms_config, check_variant, parse_overrides
from tuneloop.ideas._calibration import Calibration, calibration
from tuneloop.ideas._catalog import CATALOG
from tuneloop.ideas._io import export_yaml, import_yaml
from tuneloop.ideas._ledger import PRIORITY_FORMULA, STATES, Idea, IdeaState, Ledger, priority
from tuneloop.ideas._plan import Plan, job_args, plan_night
from tuneloop.ideas._rule import AdoptRule
from tuneloop.ideas._stats import Comparison, compare, power, seeds_needed

__all__ = [
    "AdoptRule",
    "CATALOG",
    "Calibration",
    "Comparison",
    "Idea",
    "IdeaState",
    "Ledger",
    "PRIORITY_FORMULA",
    "Plan",
    "STATES",
    "VariantBroken",
    "ab_test",
    "arms_config",
    "calibration",
    "check_variant",
    "compare",
    "export_yaml",
    "import_yaml",
    "job_args",
    "parse_overrides",
    "plan_night",
    "power",
    "priority",
    "seeds_needed",
]
