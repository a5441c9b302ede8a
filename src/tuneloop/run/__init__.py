"""Running a study: the driver (the loop) and the executors (where trials run)."""

from tuneloop.run._executor import Executor, executors
from tuneloop.run._inline import InlineExecutor
from tuneloop.run._population import PopulationExecutor
from tuneloop.run._ray import RayExecutor
from tuneloop.run._processes import ProcessesExecutor
from tuneloop.run.driver import Driver, RunSummary
from tuneloop.run.events import Failed, Finished, Report, TrialSpec

__all__ = [
    "Driver",
    "Executor",
    "Failed",
    "Finished",
    "InlineExecutor",
    "PopulationExecutor",
    "ProcessesExecutor",
    "RayExecutor",
    "Report",
    "RunSummary",
    "TrialSpec",
    "executors",
]
