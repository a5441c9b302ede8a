"""Search spaces: parameter types, validation, grid enumeration and a JSON round trip.

    >>> space = Space(
    ...     lr=LogFloat(1e-4, 1e-1),
    ...     width=Int(32, 512, log=True),
    ...     optimizer=Choice({"sgd": {"momentum": Float(0.0, 0.99)}, "adam": {}}),
    ... )
    >>> len(space.grid(steps=2))  # lr x width x (sgd x momentum + adam)
    12

Parameter names are flat: a conditional child (``momentum`` above) appears in a
configuration only when its parent takes the value that owns it, and every name is unique
across the whole tree, so ``trial.params.momentum`` is never ambiguous.
"""

from __future__ import annotations

import itertools
import json
import math
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from tuneloop._validation import check_number, check_positive_int, fail
from tuneloop.errors import ConfigError, StorageError

Value = str | int | float | bool | None

_MAX_GRID = 1_000_000


class Param(ABC):
    """One dimension of a search space."""

    type_name: str = ""

    @abstractmethod
    def grid_values(self, steps: int) -> list[Any]:
        """Values this parameter takes in a grid with ``steps`` points per continuous axis."""

    @abstractmethod
    def contains(self, value: Any) -> bool:
        """Whether ``value`` lies in this parameter's range."""

    @abstractmethod
    def distribution(self) -> Any:
        """The equivalent Optuna distribution (used to replay stored trials)."""

    @abstractmethod
    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict that :func:`param_from_json` turns back into this parameter."""

    def suggest(self, optuna_trial: Any, name: str) -> Any:
        """Ask an Optuna trial for this parameter's value (define-by-run)."""
        from optuna.distributions import CategoricalDistribution, FloatDistribution

        dist = self.distribution()
        if isinstance(dist, CategoricalDistribution):
            return optuna_trial.suggest_categorical(name, dist.choices)
        if isinstance(dist, FloatDistribution):
            return optuna_trial.suggest_float(name, dist.low, dist.high, step=dist.step, log=dist.log)
        return optuna_trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Param) and self.to_json() == other.to_json()

    def __hash__(self) -> int:
        return hash(json.dumps(self.to_json(), sort_keys=True))

    def __repr__(self) -> str:
        # `is` and a type check, not `in (None, False)`: 0.0 == False would drop a bound of 0
        fields = {k: v for k, v in self.to_json().items() if k != "type" and v is not None and v is not False}
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in fields.items())})"


def _check_bounds(owner: str, low: Any, high: Any) -> tuple[float, float]:
    low_f, high_f = check_number(low, "low", owner), check_number(high, "high", owner)
    if not (math.isfinite(low_f) and math.isfinite(high_f)):
        raise fail("low" if not math.isfinite(low_f) else "high", owner, "finite", low if not math.isfinite(low_f) else high)
    if low_f >= high_f:
        raise fail("low", owner, f"below 'high' ({high!r})", low)
    return low_f, high_f


def _spaced(low: float, high: float, steps: int, log: bool) -> np.ndarray:
    if steps == 1:
        return np.array([math.sqrt(low * high) if log else (low + high) / 2])
    return np.geomspace(low, high, steps) if log else np.linspace(low, high, steps)


class Float(Param):
    """A real number in [low, high], uniform on a linear scale, optionally on a ``step`` lattice."""

    type_name = "float"

    def __init__(self, low: float, high: float, *, step: float | None = None) -> None:
        self.low, self.high = _check_bounds("Float", low, high)
        if step is not None and (check_number(step, "step", "Float") <= 0 or step > self.high - self.low):
            raise fail("step", "Float", f"positive and at most high - low ({self.high - self.low})", step)
        self.step = None if step is None else float(step)
        if self.step is not None:
            n = (self.high - self.low) / self.step
            if abs(n - round(n)) > 1e-9 * max(1.0, n):
                raise fail("high", "Float", f"low plus a whole number of steps ({self.step!r}), e.g. "
                           f"{self.low + self.step * math.floor(n)!r}", high)

    def grid_values(self, steps: int) -> list[float]:
        if self.step is not None:
            lattice = np.arange(self.low, self.high + self.step / 2, self.step)
            if len(lattice) <= steps:
                return [float(v) for v in lattice]
            idx = np.unique(np.round(np.linspace(0, len(lattice) - 1, steps)).astype(int))
            return [float(lattice[i]) for i in idx]
        return [float(v) for v in _spaced(self.low, self.high, steps, log=False)]

    def contains(self, value: Any) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and self.low <= value <= self.high

    def distribution(self) -> Any:
        from optuna.distributions import FloatDistribution

        return FloatDistribution(self.low, self.high, step=self.step)

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type_name, "low": self.low, "high": self.high, "step": self.step}


class LogFloat(Param):
    """A positive real number in [low, high], uniform on a log scale (learning rates, decays)."""

    type_name = "logfloat"

    def __init__(self, low: float, high: float) -> None:
        self.low, self.high = _check_bounds("LogFloat", low, high)
        if self.low <= 0:
            raise fail("low", "LogFloat", "positive (a log scale cannot reach 0 or below)", low)

    def grid_values(self, steps: int) -> list[float]:
        return [float(v) for v in _spaced(self.low, self.high, steps, log=True)]

    def contains(self, value: Any) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and self.low <= value <= self.high

    def distribution(self) -> Any:
        from optuna.distributions import FloatDistribution

        return FloatDistribution(self.low, self.high, log=True)

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type_name, "low": self.low, "high": self.high}


class Int(Param):
    """An integer in [low, high] (both included), optionally log-uniform or on a ``step`` lattice."""

    type_name = "int"

    def __init__(self, low: int, high: int, *, log: bool = False, step: int = 1) -> None:
        for arg, v in (("low", low), ("high", high)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise fail(arg, "Int", "an integer", v)
        _check_bounds("Int", int(low), int(high))
        self.low, self.high, self.log = int(low), int(high), bool(log)
        self.step = check_positive_int(step, "step", "Int")
        if self.log and self.low <= 0:
            raise fail("low", "Int", "positive when log=True (a log scale cannot reach 0 or below)", low)
        if (self.high - self.low) % self.step:
            raise fail("high", "Int", f"low plus a whole number of steps ({self.step}), e.g. "
                       f"{self.low + self.step * ((self.high - self.low) // self.step)}", high)
        if self.log and self.step != 1:
            raise fail("step", "Int", "1 when log=True (Optuna cannot combine a step with a log scale)", step)

    def grid_values(self, steps: int) -> list[int]:
        lattice = list(range(self.low, self.high + 1, self.step))
        if len(lattice) <= steps:
            return lattice
        raw = _spaced(self.low, self.high, steps, log=self.log)
        snapped = {self.low + self.step * round((v - self.low) / self.step) for v in raw}
        return sorted(min(max(v, self.low), self.high) for v in snapped)

    def contains(self, value: Any) -> bool:
        return bool(  # a plain bool, also for numpy integers (whose comparisons give numpy.bool)
            isinstance(value, (int, np.integer))
            and not isinstance(value, bool)
            and self.low <= value <= self.high
            and (value - self.low) % self.step == 0
        )

    def distribution(self) -> Any:
        from optuna.distributions import IntDistribution

        return IntDistribution(self.low, self.high, log=self.log, step=self.step)

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type_name, "low": self.low, "high": self.high, "log": self.log, "step": self.step}


class Choice(Param):
    """One of a list of values; or a mapping value -> child parameters (a conditional space).

    ``Choice(["relu", "gelu"])``, or ``Choice({"sgd": {"momentum": Float(0, 0.99)}, "adam": {}})``
    where ``momentum`` exists only in configurations with ``sgd``.
    """

    type_name = "choice"

    def __init__(self, values: Any) -> None:
        if isinstance(values, Mapping):
            items = list(values.items())
        elif isinstance(values, (list, tuple)):
            items = [(v, None) for v in values]
        else:
            raise fail("values", "Choice", "a non-empty list of values or a mapping value -> child parameters", values)
        if not items:
            raise fail("values", "Choice", "a non-empty list of values or a mapping value -> child parameters", values)
        self.values: list[Value] = []
        self.children: dict[int, Space] = {}
        for i, (value, child) in enumerate(items):
            if value is not None and not isinstance(value, (str, int, float, bool)):
                raise fail("values", "Choice", "made of str, int, float, bool or None", value)
            if any(_same(value, v) for v in self.values):
                raise fail("values", "Choice", "made of distinct values", value)
            self.values.append(value)
            if child:
                self.children[i] = child if isinstance(child, Space) else Space(child)

    def index(self, value: Any) -> int:
        for i, v in enumerate(self.values):
            if _same(v, value):
                return i
        raise KeyError(value)

    def child(self, value: Any) -> Space | None:
        """The sub-space that ``value`` switches on, or None."""
        return self.children.get(self.index(value))

    def grid_values(self, steps: int) -> list[Any]:
        return list(self.values)

    def contains(self, value: Any) -> bool:
        try:
            self.index(value)
        except KeyError:
            return False
        return True

    def distribution(self) -> Any:
        from optuna.distributions import CategoricalDistribution

        return CategoricalDistribution(self.values)

    def to_json(self) -> dict[str, Any]:
        children = [{"value": self.values[i], "space": s.to_json()} for i, s in sorted(self.children.items())]
        return {"type": self.type_name, "values": list(self.values), "children": children}


def _same(a: Any, b: Any) -> bool:
    """Equality that keeps True apart from 1 (a Choice may hold both)."""
    return (type(a) is type(b) and a == b) or (
        isinstance(a, (int, float)) and isinstance(b, (int, float))
        and not isinstance(a, bool) and not isinstance(b, bool) and a == b
    )


_TYPES: dict[str, type[Param]] = {c.type_name: c for c in (Float, LogFloat, Int, Choice)}


_REQUIRED = {"float": ("low", "high"), "logfloat": ("low", "high"), "int": ("low", "high"), "choice": ("values",)}


def param_from_json(data: Mapping[str, Any]) -> Param:
    """Inverse of ``Param.to_json``; a stored parameter that is not one raises ConfigError."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"a parameter is stored as {type(data).__name__}, not an object")
    kind = data.get("type")
    if not isinstance(kind, str) or kind not in _TYPES:
        raise ConfigError(f"unknown parameter type {kind!r:.40} (known: {', '.join(sorted(_TYPES))})")
    missing = [key for key in _REQUIRED[kind] if key not in data]
    if missing:
        raise ConfigError(f"it has no {' or '.join(map(repr, missing))} (every {kind} parameter has "
                          f"{' and '.join(map(repr, _REQUIRED[kind]))})")
    if kind == "choice":
        children = data.get("children") or []
        if not isinstance(children, list) or not all(isinstance(c, Mapping) and "space" in c for c in children):
            raise ConfigError("a choice's children are not a list of {value, space} objects")
        by_value = {json.dumps(c.get("value")): _space_from(c["space"]) for c in children}
        values = data["values"]
        if not by_value:
            return Choice(values)
        if not isinstance(values, list):
            raise ConfigError("a choice's values are not a list")
        return Choice({v: by_value.get(json.dumps(v)) for v in values})
    if kind == "float":
        return Float(data["low"], data["high"], step=data.get("step"))
    if kind == "logfloat":
        return LogFloat(data["low"], data["high"])
    return Int(data["low"], data["high"], log=data.get("log", False), step=data.get("step", 1))


def space_from_json(data: Mapping[str, Any] | str, what: str = "a stored space") -> Space:
    """Inverse of ``Space.to_json`` (accepts the dict or its JSON text).

    Stored spaces are untrusted (a database may come from someone else): anything that is not a
    valid space raises StorageError naming ``what`` and the cause, never a KeyError or TypeError."""
    try:
        return _space_from(json.loads(data) if isinstance(data, str) else data)
    except (ConfigError, TypeError, ValueError, KeyError, ArithmeticError, RecursionError) as exc:
        raise StorageError(f"Corrupt space: {what} is not a valid space ({exc}); repair or delete that row "
                           f"in the database.") from None


def _space_from(data: Any) -> Space:
    if not isinstance(data, Mapping):
        raise ConfigError(f"a space is stored as {type(data).__name__}, not an object")
    params = {}
    for name, p in data.items():
        try:
            params[name] = param_from_json(p)
        except (ConfigError, TypeError, ValueError, KeyError, ArithmeticError) as exc:
            raise ConfigError(f"parameter {name!r:.60}: {exc}") from None
    return Space(params)


class Space(Mapping[str, Param]):
    """A search space: named parameters, some of which may switch on children.

    Build it with keywords (``Space(lr=LogFloat(1e-4, 1e-1))``) or from a dict.
    """

    def __init__(self, params: Mapping[str, Param] | None = None, /, **kwargs: Param) -> None:
        merged = {**(params or {}), **kwargs}
        if not merged:
            raise ConfigError("A Space needs at least one parameter, e.g. Space(lr=LogFloat(1e-4, 1e-1)).")
        for name, p in merged.items():
            if not isinstance(name, str) or not name.isidentifier():
                raise ConfigError(
                    f"Parameter names must be Python identifiers so that trial.params.NAME works. "
                    f"Got {name!r}; use e.g. {str(name).replace('-', '_').replace('.', '_')!r}."
                )
            if not isinstance(p, Param):
                raise ConfigError(
                    f"Parameter {name!r} must be a Float, LogFloat, Int or Choice. Got {p!r} instead."
                )
        self._params = dict(merged)
        seen: dict[str, str] = {}
        for path, name in self._walk_names(""):
            if name in seen:
                raise ConfigError(
                    f"Parameter {name!r} is defined twice in the space ({seen[name] or 'top level'} and "
                    f"{path or 'top level'}); give each a distinct name, e.g. 'sgd_{name}'."
                )
            seen[name] = path

    def _walk_names(self, path: str) -> Iterator[tuple[str, str]]:
        for name, p in self._params.items():
            yield path, name
            if isinstance(p, Choice):
                for i, child in p.children.items():
                    where = f"{path + ', ' if path else ''}{name}={p.values[i]!r}"
                    yield from child._walk_names(where)

    # -- Mapping protocol over the top-level parameters --
    def __getitem__(self, name: str) -> Param:
        return self._params[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._params)

    def __len__(self) -> int:
        return len(self._params)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Space) and self.to_json() == other.to_json()

    def __hash__(self) -> int:
        return hash(json.dumps(self.to_json(), sort_keys=True))

    def __repr__(self) -> str:
        return f"Space({', '.join(f'{k}={v!r}' for k, v in self._params.items())})"

    @property
    def is_conditional(self) -> bool:
        """Whether some parameter exists only under a Choice value."""
        return any(isinstance(p, Choice) and p.children for p in self._params.values())

    @property
    def names(self) -> list[str]:
        """Every parameter name in the tree, conditional children included."""
        return [name for _, name in self._walk_names("")]

    def active(self, config: Mapping[str, Any]) -> dict[str, Param]:
        """The parameters that are switched on in ``config``, in tree order."""
        out: dict[str, Param] = {}
        for name, p in self._params.items():
            out[name] = p
            if isinstance(p, Choice) and name in config and p.contains(config[name]):
                child = p.child(config[name])
                if child is not None:
                    out.update(child.active(config))
        return out

    def validate(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """Return ``config`` if it is a point of this space; else raise ConfigError saying why."""
        active = self.active(config)
        missing = [n for n in active if n not in config]
        extra = [n for n in config if n not in active]
        if missing or extra:
            raise ConfigError(
                f"Configuration {dict(config)!r} does not fit the space: "
                + "; ".join(filter(None, [f"missing {missing}" if missing else "", f"unexpected {extra}" if extra else ""]))
                + "."
            )
        for name, p in active.items():
            if not p.contains(config[name]):
                raise ConfigError(f"Parameter {name!r}={config[name]!r} is outside {p!r}.")
        return dict(config)

    def distributions(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """Optuna distributions of the parameters active in ``config`` (to replay a stored trial)."""
        return {name: p.distribution() for name, p in self.active(config).items()}

    def suggest(self, optuna_trial: Any) -> dict[str, Any]:
        """Draw one configuration from an Optuna trial, define-by-run (children after parents)."""
        config: dict[str, Any] = {}
        for name, p in self._params.items():
            config[name] = p.suggest(optuna_trial, name)
            if isinstance(p, Choice):
                child = p.child(config[name])
                if child is not None:
                    config.update(child.suggest(optuna_trial))
        return config

    def grid_size(self, steps: int | Mapping[str, int] = 5) -> int:
        """How many configurations :meth:`grid` would return."""
        total = 1
        for name, p in self._params.items():
            n = _steps_for(steps, name)
            if isinstance(p, Choice):
                total *= sum(
                    p.children[i].grid_size(steps) if i in p.children else 1 for i in range(len(p.values))
                )
            else:
                total *= len(p.grid_values(n))
        return total

    def grid(self, steps: int | Mapping[str, int] = 5) -> list[dict[str, Any]]:
        """Every configuration of a grid: ``steps`` points per continuous axis (an int, or a dict
        name -> int with ``"default"`` for the rest), all values of each Int with few enough
        values, every Choice value, children expanded under their parent."""
        size = self.grid_size(steps)
        if size > _MAX_GRID:
            raise ConfigError(
                f"The grid would have {size:,} configurations (more than {_MAX_GRID:,}); lower 'steps' "
                f"or use the 'sobol' searcher, which covers a space evenly without enumerating it."
            )
        options: list[list[dict[str, Any]]] = []
        for name, p in self._params.items():
            n = _steps_for(steps, name)
            if isinstance(p, Choice):
                opts: list[dict[str, Any]] = []
                for i, v in enumerate(p.values):
                    sub = p.children[i].grid(steps) if i in p.children else [{}]
                    opts.extend({name: v, **c} for c in sub)
                options.append(opts)
            else:
                options.append([{name: v} for v in p.grid_values(n)])
        return [{k: v for part in combo for k, v in part.items()} for combo in itertools.product(*options)]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict; :func:`space_from_json` turns it back into an equal Space."""
        return {name: p.to_json() for name, p in self._params.items()}


def _steps_for(steps: int | Mapping[str, int], name: str) -> int:
    n = steps.get(name, steps.get("default", 5)) if isinstance(steps, Mapping) else steps
    return check_positive_int(n, "steps", "Space.grid")
