"""One-file HTML reports: a study (plots, data and images embedded), and the night shift's morning report."""

from tuneloop.report._morning import build_morning, write_morning
from tuneloop.report._report import build_report, write_report

__all__ = ["build_morning", "build_report", "write_morning", "write_report"]
