"""The data every table, page and report draws, read from the store in one place.

The dashboard's JSON API, the one-file report and the ``tuneloop`` command's tables all draw
what these functions return: JSON-ready dicts (``*_view``, strings as stored: the pages escape
them) and plain dataclasses (the CLI's Rich tables escape them). Drawing stays with the callers.
"""

from tuneloop.views._forecast import forecast_view, trial_forecast
from tuneloop.views._ideas import ideas_view, latest_tests, measured_effects
from tuneloop.views._morning import ChainStep, Decision, JobLine, Morning, Verdict, morning
from tuneloop.views._rounds import RoundRow, final_view, round_rows, rounds_view
from tuneloop.views._studies import studies_view, trials_of
from tuneloop.views._study import analysis_view, study_response, study_view
from tuneloop.views._table import PAGE_ROWS, trials_page_view
from tuneloop.views._trial import (
    SystemSummary,
    TrialData,
    compare_view,
    curve_summaries,
    curves_view,
    system_summaries,
    trial_data,
    trial_row,
    trial_view,
)
from tuneloop.views._warm import warm_up

__all__ = [
    "PAGE_ROWS",
    "ChainStep",
    "Decision",
    "JobLine",
    "Morning",
    "RoundRow",
    "SystemSummary",
    "TrialData",
    "Verdict",
    "analysis_view",
    "compare_view",
    "curve_summaries",
    "curves_view",
    "final_view",
    "forecast_view",
    "ideas_view",
    "latest_tests",
    "measured_effects",
    "morning",
    "round_rows",
    "rounds_view",
    "studies_view",
    "study_response",
    "study_view",
    "system_summaries",
    "trial_data",
    "trial_forecast",
    "trial_row",
    "trial_view",
    "trials_of",
    "trials_page_view",
    "warm_up",
]
