"""Finalize a study: retrain its best configurations (or the front members a pick rule chooses) over
seeds, test once, build ensembles."""

from tuneloop.finalize._ensemble import METHODS, EnsembleResult, EnsembleRow, ensemble
from tuneloop.finalize._run import (
    AlreadyFinalizedError,
    FinalConfig,
    FinalResult,
    final_name,
    final_objectives,
    finalize,
    latest_final,
    read_final,
    test_metric,
)
from tuneloop.finalize._select import Candidate, top_configs

__all__ = ["METHODS", "AlreadyFinalizedError", "Candidate", "EnsembleResult", "EnsembleRow", "FinalConfig", "FinalResult", "ensemble",
           "final_name", "final_objectives", "finalize", "latest_final", "read_final", "test_metric", "top_configs"]
