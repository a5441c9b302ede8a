"""Studies in and out: Optuna studies (any storage Optuna reads) and CSV tables imported as tuneloop
studies, and tuneloop studies exported back to Optuna (docs/export.md).

Optuna is imported only by the functions that need it.
"""

from tuneloop.interop._common import ImportSummary
from tuneloop.interop._csv_import import import_csv
from tuneloop.interop._optuna_export import export_optuna
from tuneloop.interop._optuna_import import import_optuna

__all__ = ["ImportSummary", "export_optuna", "import_csv", "import_optuna"]
