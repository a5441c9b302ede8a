"""Analysis: plain data computed from the store, drawn by the CLI, reports and dashboard."""

from tuneloop.analysis._curves import CurveSummary, direction_of, summarize_curve
from tuneloop.analysis._diagnose import Finding, analyze, classify_curve, expected_best
from tuneloop.analysis._seeds import Difference, MeanCI, mean_ci, welch
from tuneloop.analysis._study import band, history, importance, param_effects, seed_groups

__all__ = ["CurveSummary", "Difference", "Finding", "MeanCI", "analyze", "band", "classify_curve", "direction_of",
           "expected_best", "history", "importance", "mean_ci", "param_effects", "seed_groups", "summarize_curve",
           "welch"]
