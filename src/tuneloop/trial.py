"""The handle a trial function receives: its parameters, budget and seed, and the way back.

    def train(trial: tl.Trial) -> None:
        torch.manual_seed(trial.seed)
        for epoch in range(trial.budget.epochs):
            ...
            trial.report(epoch, train_loss=loss, val_acc=acc)
            if trial.should_stop():
                return
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from tuneloop.errors import ConfigError

if TYPE_CHECKING:
    from tuneloop.run.events import Channel, TrialSpec


class _ReadOnlyNames(Mapping[str, Any]):
    """A read-only mapping whose keys are also attributes (``p["lr"]`` and ``p.lr``)."""

    _what = "value"

    def __init__(self, values: Mapping[str, Any] | None = None) -> None:
        object.__setattr__(self, "_values", dict(values or {}))

    def __getitem__(self, name: str) -> Any:
        return self._values[name]

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name == "_values":  # pickle and copy probe these before _values exists
            raise AttributeError(name)
        try:
            return self._values[name]
        except KeyError:
            known = ", ".join(sorted(self._values)) or "none"
            raise AttributeError(f"This trial has no {self._what} {name!r}; it has: {known}.") from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is read-only.")

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._values!r})"

    def to_dict(self) -> dict[str, Any]:
        return dict(self._values)


class Params(_ReadOnlyNames):
    """A trial's configuration: ``params.lr`` or ``params["lr"]``."""

    _what = "parameter"


class Budget(_ReadOnlyNames):
    """How much a trial may spend, by named resource: ``Budget(epochs=20)`` -> ``budget.epochs``."""

    _what = "budget resource"

    def __init__(self, values: Mapping[str, Any] | None = None, /, **kwargs: Any) -> None:
        merged = {**(values or {}), **kwargs}
        for name, v in merged.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
                raise ConfigError(f"Budget resource {name!r} must be a positive number. Got {v!r} instead.")
        super().__init__(merged)


DATA_KEYS = ("fraction", "data_seed")  # budget keys of the data probe, read as Trial.fraction and Trial.data_seed


_PLAIN_LEAVES = (type(None), bool, int, float, complex, str, bytes)
_PLAIN_CONTAINERS = (dict, list, tuple, set)


def check_plain_state(state: Any) -> None:
    """Raise :class:`ConfigError` unless ``state`` is tensors, dicts (``OrderedDict`` too), lists,
    tuples, sets, numbers, strings, bytes, None, torch dtypes, devices and sizes: what
    ``torch.load(weights_only=True)`` reads back. Checked before saving, so the mistake shows where
    it is made, not when another trial fails to load the file."""
    import collections

    import torch

    leaves = (*_PLAIN_LEAVES, torch.dtype, torch.device, torch.Size, torch.Tensor, torch.nn.Parameter)
    containers = (*_PLAIN_CONTAINERS, collections.OrderedDict)
    seen: set[int] = set()
    stack: list[tuple[Any, str]] = [(state, "state")]
    while stack:  # a loop, not recursion: deep nesting must not overflow the stack
        value, where = stack.pop()
        kind = type(value)
        if kind in leaves:
            continue
        if kind not in containers:
            raise ConfigError(
                f"Trial.save_checkpoint: {where} is a {kind.__module__}.{kind.__qualname__}; a checkpoint holds only "
                "tensors, dicts, lists, tuples, numbers, strings and None, so it loads without running code "
                "(torch.load(weights_only=True)). Convert it: a numpy array with torch.from_numpy, an object to "
                "its state_dict() or its fields.")
        if id(value) in seen:
            continue
        seen.add(id(value))
        if isinstance(value, dict):
            for key, item in value.items():
                label = f"{where}[{_short(key)}]"
                stack += [(key, f"the key {label}"), (item, label)]
        else:
            stack += [(item, f"{where}[{i}]") for i, item in enumerate(value)]


def _short(key: Any) -> str:
    text = repr(key)
    return text if len(text) <= 40 else text[:37] + "..."


def load_state(path: str) -> Any:
    """The state saved in the checkpoint file at ``path``, loaded with ``weights_only=True`` (tensors
    and plain data, never code); any other content, or an unreadable file, is refused with
    :class:`ConfigError`."""
    import torch

    try:
        return torch.load(path, weights_only=True)
    except Exception as e:  # noqa: BLE001 - whatever is wrong with an untrusted file, it is the same refusal
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise ConfigError(
            f"The checkpoint {path} was refused: it does not load as tensors and plain data "
            f"(torch.load(weights_only=True): {reason}). Checkpoints from a database you did not write may be "
            "hostile; start this study afresh in a new database, or rerun the trial that saved it.") from None


def to_metric(name: str, value: Any) -> float:
    """Convert a reported value (float, int, numpy or 0-d torch scalar) to float, or explain."""
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConfigError(
            f"Metric {name!r} must be a number (a float, an int or a 0-d tensor). Got {value!r} instead; "
            f"report .item() of a tensor or a Python number."
        ) from None


class Trial:
    """What a trial function is given: ``params``, ``budget``, ``seed``, ``report``, ``should_stop``."""

    def __init__(self, spec: TrialSpec, channel: Channel) -> None:
        self._spec = spec
        self._channel = channel
        self._stop = False
        self.params = Params(spec.params)
        # the data probe's keys ride in the spec's budget but are not resources a trial spends
        self.budget = Budget({k: v for k, v in spec.budget.items() if k not in DATA_KEYS})
        self.splits_used = False  # set by splits(): fit refuses a final run that skipped it
        self._subset_taken = False  # set by subset() and subset_indices(): fit then trains on what it is given

    @property
    def number(self) -> int:
        """The trial's number in its study (0, 1, 2...)."""
        return self._spec.number

    @property
    def seed(self) -> int:
        """A seed for this trial's random streams, derived from the study seed and the number."""
        return self._spec.seed

    @property
    def study_name(self) -> str:
        return self._spec.study

    @property
    def phase(self) -> str:
        """``"tune"`` while searching; ``"final"`` when ``tuneloop finalize`` retrains this
        configuration to measure it once on the test split."""
        return self._spec.phase

    @property
    def fraction(self) -> float:
        """The share of the training split this trial trains on: 1.0, except in ``tuneloop probe
        data``, which retrains the best configuration on nested subsets. ``fit`` applies it; any
        other trial function applies it with :meth:`subset` (or :meth:`subset_indices`)."""
        return float(self._spec.budget.get("fraction", 1.0))

    @property
    def probing_data(self) -> bool:
        """True in a run of ``tuneloop probe data`` (whose budget sets the fraction, 1.0 included)."""
        return "fraction" in self._spec.budget

    @property
    def data_seed(self) -> int:
        """The seed that chooses the subset: the same for every fraction of one replicate, so the
        smaller subsets lie inside the larger ones."""
        return int(self._spec.budget.get("data_seed", 0))

    @property
    def subset_taken(self) -> bool:
        """True once :meth:`subset` or :meth:`subset_indices` has taken this trial's share: ``fit`` then
        trains on the training split it is given as it is, instead of taking the share again."""
        return self._subset_taken

    def subset(self, train: Any) -> Any:
        """This trial's share of ``train`` (an (x, y) pair of arrays or tensors): a nested subset,
        stratified by class for integer labels; ``train`` itself at fraction 1.0.

            x, y = trial.subset(data.train)
        """
        from tuneloop._subset import take_subset

        taken = take_subset(train, self.fraction, self.data_seed)
        self._subset_taken = True
        return taken

    def subset_indices(self, labels: Any) -> Any:
        """Sorted positions of this trial's subset among examples labelled ``labels``; for a Dataset
        or DataLoader, which ``fit`` cannot cut itself:

            train = torch.utils.data.Subset(dataset, trial.subset_indices(labels))
        """
        from tuneloop._subset import subset_indices

        idx = subset_indices(labels, self.fraction, self.data_seed)
        self._subset_taken = True
        return idx

    @property
    def heldout(self) -> str:
        """The split this trial is judged on: ``"val"`` while tuning, ``"test"`` when final.
        Name reported metrics after it (``f"{trial.heldout}_acc"``); ``fit`` does."""
        return "test" if self._spec.phase == "final" else "val"

    def splits(self, data: Any) -> tuple[Any, Any]:
        """(what to train on, what to evaluate on) for this phase, from ``data`` with ``train``,
        ``val`` and ``test`` (a ``Splits``, a dict or a 3-tuple of (x, y) pairs or Datasets).

        Tuning gets (train, val): the test split stays unseen. The final phase gets (train, test),
        or (train + val, test) when finalize was asked to refit on both; with train alone the
        validation split is kept for stacking ensembles (see :meth:`extra_heldout`).
        """
        from tuneloop._splits import concat, three_splits

        train, val, test = three_splits(data)
        self.splits_used = True
        if self._spec.phase != "final":
            self._extra = None
            return train, val
        if self._spec.fit_on == "train+val":
            self._extra = None
            return concat(train, val), test
        self._extra = ("val", val)
        return train, test

    def extra_heldout(self) -> tuple[str, Any] | None:
        """(name, data) of a split that is held out but not judged on (validation, in a final
        run on train only): predictions on it train the stacking ensemble. Set by :meth:`splits`."""
        return getattr(self, "_extra", None)

    def report(self, step: int, **metrics: Any) -> None:
        """Record metrics at ``step`` (an epoch or a step count) and let the scheduler decide.

        Every metric is stored; the study's objective metric also goes to the scheduler, whose
        verdict :meth:`should_stop` returns. A NaN or infinite objective stops the trial as
        ``diverged``.
        """
        _check_step(step, "Trial.report")
        if not metrics:
            raise ConfigError("Trial.report needs at least one metric, e.g. trial.report(epoch, val_loss=0.3).")
        values = {name: to_metric(name, v) for name, v in metrics.items()}
        if self._channel.report(self._spec, step, values):
            self._stop = True

    def should_stop(self) -> bool:
        """True when the scheduler or an alert rule stopped this trial, or its objective
        diverged: return soon."""
        if not self._stop and self._channel.stop_requested(self._spec):
            self._stop = True
        return self._stop

    def log(self, step: int, **values: Any) -> None:
        """Record values at ``step`` without asking the scheduler (train loss every N steps,
        diagnostics). Alert rules still see them."""
        _check_step(step, "Trial.log")
        if values:
            from tuneloop.run.events import Scalars

            self._channel.emit(self._spec, Scalars(self._spec.trial_id, step,
                                                   {k: to_metric(k, v) for k, v in values.items()}))

    def set_attr(self, name: str, value: Any) -> None:
        """Record a fact about this trial that is not a curve (a git commit, a dataset version, the
        number of parameters): a string, number, bool or None, shown by ``tuneloop show`` and the
        dashboard. Setting a name again replaces its value. tuneloop sets ``device`` and ``host``."""
        from tuneloop.run.events import Attrs

        if not isinstance(name, str) or not 0 < len(name) <= 255:
            raise ConfigError(f"The name given to Trial.set_attr must be a string of 1 to 255 characters. "
                              f"Got {name!r:.60} instead.")
        if hasattr(value, "item") and callable(value.item):  # numpy and 0-d torch scalars
            value = value.item()
        if value is not None and not isinstance(value, (str, int, float, bool)):
            raise ConfigError(f"Trial.set_attr({name!r:.60}, ...) takes a string, number, bool or None; got a "
                              f"{type(value).__name__}. Store str(value), or log a table with log_sample.")
        self._channel.emit(self._spec, Attrs(self._spec.trial_id, {name: value}))

    def log_histogram(self, step: int, name: str, values: Any, *, bins: int = 32) -> None:
        """Record the distribution of ``values`` (a tensor or array) at ``step`` as bin counts.

        Only the counts and summary statistics are stored. Empty or non-finite input is recorded
        with a flag (and alert rules see it), never raised.
        """
        from tuneloop._logged import summarize

        _check_step(step, "Trial.log_histogram")
        self._log_summary(step, name, summarize(values, bins))

    def _log_summary(self, step: int, name: str, summary: dict[str, Any]) -> None:
        """A histogram summarized already (by :meth:`log_histogram`, or by
        :func:`tuneloop._logged.summarize_rows` for a population's members in one batch)."""
        from tuneloop.run.events import Histogram

        _check_step(step, "Trial.log_histogram")
        self._channel.emit(self._spec, Histogram(self._spec.trial_id, step, str(name), **summary))

    def log_slice(self, step: int, slice: str, metric: str, value: Any, n: int) -> None:
        """Record ``metric`` = ``value`` on the ``n`` examples of one slice (a class, a noise level)."""
        from tuneloop.run.events import SliceMetric

        _check_step(step, "Trial.log_slice")
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ConfigError(f"The 'n' argument of Trial.log_slice must be a non-negative int. Got {n!r} instead.")
        self._channel.emit(self._spec, SliceMetric(self._spec.trial_id, step, str(slice), str(metric),
                                                   to_metric(f"{metric}[{slice}]", value), n))

    def log_sample(self, step: int, name: str, value: Any, *, kind: str | None = None) -> None:
        """Record something to look at: an image (HxW/HxWxC array, CHW tensor or matplotlib
        figure; stored as a PNG file), text, an array or a table (dict of columns or list of rows)."""
        from tuneloop._logged import encode_sample
        from tuneloop.run.events import Sample

        _check_step(step, "Trial.log_sample")
        kind, data = encode_sample(value, kind)
        self._channel.emit(self._spec, Sample(self._spec.trial_id, step, str(name), kind, data))

    @property
    def checkpointing(self) -> bool:
        """True when the scheduler continues trials from checkpoints (successive halving, PBT):
        save one with :meth:`save_checkpoint` at the end of training (``fit`` does)."""
        return self._spec.checkpoint

    def save_checkpoint(self, step: int, state: Any) -> None:
        """Save ``state`` as of ``step``, so a later trial can continue from it.

        ``state`` holds tensors, dicts, lists, tuples, numbers, strings and None only (model and
        optimizer state dicts, RNG states as tensors or tuples of ints): checkpoints load with
        ``torch.load(weights_only=True)``, which never runs code from the file. Anything else (a
        numpy array, an object) is refused here with :class:`ConfigError` naming where it is."""
        import io

        import torch

        from tuneloop.run.events import Checkpoint

        _check_step(step, "Trial.save_checkpoint")
        check_plain_state(state)
        buffer = io.BytesIO()
        torch.save(state, buffer)
        self._channel.emit(self._spec, Checkpoint(self._spec.trial_id, step, buffer.getvalue()))

    def load_checkpoint(self) -> tuple[int, Any] | None:
        """(step, state) this trial starts from: its own earlier segment's when successive halving
        promotes it, a better member's when PBT exploits; None for a fresh start.

        The file is untrusted (the database naming it may come from someone else): it loads with
        ``weights_only=True``, and one holding anything but tensors and plain data is refused with
        :class:`ConfigError`, so the trial fails instead of running code from it."""
        if self._spec.resume_error is not None:
            from tuneloop.errors import NotFound

            raise NotFound(self._spec.resume_error)
        if self._spec.resume is None:
            return None
        return int(self._spec.resume_step or 0), load_state(self._spec.resume)

    def log_predictions(self, step: int, split: str, outputs: Any, targets: Any) -> None:
        """Save the model's outputs on a held-out split (class probabilities, shape (n, classes),
        or regression outputs) with the targets, so ensembles can be built from trials later.
        ``fit`` does this for you at the selected epoch."""
        from tuneloop._logged import encode_predictions
        from tuneloop.run.events import Sample

        _check_step(step, "Trial.log_predictions")
        data = encode_predictions(outputs, targets)
        self._channel.emit(self._spec, Sample(self._spec.trial_id, step, f"predictions/{split}", "predictions", data))

    def __repr__(self) -> str:
        return f"Trial(number={self.number}, params={self.params.to_dict()!r})"

    def __getstate__(self) -> dict[str, Any]:
        """A copy sent to another process (a model function that captured the trial) keeps the
        parameters, budget and seed but cannot talk to the driver."""
        return {**self.__dict__, "_channel": _Detached()}

    def attach(self, channel: Channel) -> None:
        """Talk to the driver through ``channel`` (a copy of this trial in another process)."""
        self._channel = channel


class _Detached:
    """The channel of a Trial copied to another process."""

    def _fail(self, *_: Any) -> Any:
        raise ConfigError("This Trial is a copy in another process; report through the trial the function was "
                          "given, not one captured by the model function.")

    report = emit = stop_requested = _fail


def _check_step(step: Any, owner: str) -> None:
    if isinstance(step, bool) or not isinstance(step, int) or not 0 <= step < 2**63:  # a database integer
        raise ConfigError(f"The 'step' argument of {owner} must be a non-negative int below 2**63. "
                          f"Got {step!r:.60} instead.")
