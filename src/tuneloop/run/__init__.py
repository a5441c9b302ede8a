"""Running a study: the driver (the loop), the executors (where trials run) and ``launch``, the
one way a driver is started."""

from tuneloop.run._executor import Executor, InProcessExecutor, executors
from tuneloop.run._inline import InlineExecutor
from tuneloop.run._launch import check_retries, executor_spec, launch
from tuneloop.run._population import PopulationExecutor
from tuneloop.run._processes import ProcessesExecutor
from tuneloop.run._ray import RayExecutor
from tuneloop.run.driver import Driver, RunSummary
from tuneloop.run.events import Channel, Failed, Finished, Report, TrialSpec

__all__ = [
    "Channel",
    "Driver",
    "Executor",
    "Failed",
    "Finished",
    "InProcessExecutor",
    "InlineExecutor",
    "PopulationExecutor",
    "ProcessesExecutor",
    "RayExecutor",
    "Report",
    "RunSummary",
    "TrialSpec",
    "check_retries",
    "executor_spec",
    "executors",
    "launch",
]
