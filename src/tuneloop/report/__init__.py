"""One-file HTML reports of a study (plots, data and images embedded)."""

from tuneloop.report._report import build_report, write_report

__all__ = ["build_report", "write_report"]
