"""Analysis: plain data computed from the store, drawn by the CLI, reports and dashboard."""

from tuneloop.analysis._curves import CurveSummary, direction_of, summarize_curve

__all__ = ["CurveSummary", "direction_of", "summarize_curve"]
