"""Run one trial function and turn whatever it does into a Finished or Failed event."""

from __future__ import annotations

import traceback
from collections.abc import Callable, Mapping
from typing import Any

from tuneloop.errors import TrialPruned
from tuneloop.run.events import Channel, Failed, Finished, TrialSpec
from tuneloop.trial import Trial, to_metric


def execute(fn: Callable[[Trial], Any], spec: TrialSpec, channel: Channel) -> Finished | Failed:
    """Call ``fn(trial)``; a raised exception or ``sys.exit()`` becomes Failed with its traceback
    (never escapes), except KeyboardInterrupt, which the driver handles."""
    trial = Trial(spec, channel)
    try:
        result = fn(trial)
    except TrialPruned:
        return Finished(spec.trial_id, None, pruned=True)
    except SystemExit as exc:  # sys.exit() or argparse in a trial: that trial fails, the driver and workers go on
        return Failed(spec.trial_id, exit_message(exc), traceback.format_exc())
    except Exception as exc:  # noqa: BLE001 - a trial's failure must never stop the study
        return Failed(spec.trial_id, _one_line(exc), traceback.format_exc())
    try:
        return Finished(spec.trial_id, _as_metrics(result), pruned=False)
    except Exception as exc:  # noqa: BLE001
        return Failed(spec.trial_id, _one_line(exc), "")


def _as_metrics(result: Any) -> dict[str, float] | None:
    """A trial function may return nothing, a dict of final metrics, or one number."""
    if result is None:
        return None
    if isinstance(result, Mapping):
        return {str(k): to_metric(str(k), v) for k, v in result.items()}
    if (isinstance(result, (int, float)) and not isinstance(result, bool)) or hasattr(result, "item"):
        return {"": to_metric("return value", result)}
    raise TypeError(
        f"The trial function returned {type(result).__name__}; return None, a number "
        f"or a dict of final metrics such as {{'val_acc': 0.9}}."
    )


def exit_message(exc: SystemExit) -> str:
    """One line for a trial function that called ``sys.exit``: what it did and what to do instead."""
    return (f"SystemExit: the trial function called sys.exit({exc.code!r}); return a result or raise an exception "
            f"instead (argparse exits this way on bad arguments: read settings from trial.params).")


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
