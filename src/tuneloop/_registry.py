"""A small name -> factory registry for each kind of plug-in (searcher, scheduler, executor).

A plug-in is chosen by progressive disclosure: a name (``"tpe"``), a dict with a name and
options (``{"name": "tpe", "n_startup_trials": 20}``), or a ready instance. Each name also records
the class its factory builds, so what a plug-in declares (``ends_by_itself``...) can be read
before it is built, and the contract suites in tests/contracts/ run every registered name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar, cast

from tuneloop.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Factories of one kind of plug-in, looked up by name."""

    def __init__(self, kind: str, base: type) -> None:
        self.kind = kind
        self.base = base
        self._factories: dict[str, Callable[..., T]] = {}
        self._builds: dict[str, type] = {}

    def register(self, name: str, builds: type | None = None) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator: register ``factory`` under ``name``; ``builds`` is the class it returns
        (the kind's base class when not given)."""

        def deco(factory: Callable[..., T]) -> Callable[..., T]:
            self._factories[name] = factory
            self._builds[name] = builds or self.base
            return factory

        return deco

    def declared(self, spec: Any, attribute: str) -> Any:
        """What ``spec`` declares as ``attribute`` before it is built: an instance's own value, or
        the class attribute of what its name builds (None for an unknown name)."""
        if isinstance(spec, self.base):
            return getattr(spec, attribute)
        name = spec.get("name") if isinstance(spec, dict) else spec
        cls = self._builds.get(name) if isinstance(name, str) else None
        return None if cls is None else getattr(cls, attribute, None)

    @property
    def names(self) -> list[str]:
        return sorted(self._factories)

    def resolve(self, spec: Any) -> tuple[str, Callable[..., T], dict[str, Any]] | T:
        """Split ``spec`` into (name, factory, options), or return it if it is an instance."""
        if isinstance(spec, self.base):
            return cast(T, spec)
        if isinstance(spec, dict):
            options = dict(spec)
            name = options.pop("name", None)
        else:
            name, options = spec, {}
        if not isinstance(name, str) or name not in self._factories:
            raise ConfigError(
                f"Unknown {self.kind} {name!r}. Valid names: {', '.join(self.names)}."
            )
        return name, self._factories[name], options

    def create(self, spec: Any, **context: Any) -> T:
        """Build a plug-in from a name, a dict with a name and options, or an instance.

        ``context`` holds what the driver knows (space, seed, mode...); each factory takes the
        keywords it needs and ignores the rest.
        """
        resolved = self.resolve(spec)
        if not isinstance(resolved, tuple):
            return resolved
        name, factory, options = resolved
        try:
            return factory(options=options, **context)
        except TypeError as exc:
            raise ConfigError(f"Bad options for {self.kind} {name!r}: {exc}") from exc
