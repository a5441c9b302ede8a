"""Trackers: mirror every trial of a study to TensorBoard, MLflow or Weights & Biases.

    study.run(n_trials=20, callbacks=[tl.trackers.TensorBoard("runs")])
    # tuneloop run exp.py --mirror tensorboard=runs --mirror mlflow=sqlite:///mlflow.db

Each is an optional extra (``pip install 'tuneloop[tensorboard]'``, ``[mlflow]``, ``[wandb]``);
tuneloop's own store stays the record, the mirrors are for the tools a team already reads.
"""

from tuneloop.trackers._base import Tracker, from_option, safe_segment, trackers
from tuneloop.trackers._mlflow import MLflow, safe_key
from tuneloop.trackers._tensorboard import TensorBoard
from tuneloop.trackers._wandb import WandB

__all__ = ["MLflow", "TensorBoard", "Tracker", "WandB", "from_option", "safe_key", "safe_segment", "trackers"]
