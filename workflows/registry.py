"""Which journeys exist, by name.

The worker passes this module through the workflow sandbox, so it holds only strings
(module and class name). The engine re-imports the journey's module inside the sandbox,
where its code is checked for determinism like any workflow code.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from workflows.errors import DuplicateJourneyError, UnknownJourneyError

if TYPE_CHECKING:
    from workflows.journey import Journey

_JOURNEYS: dict[str, tuple[str, str]] = {}
_ANCESTORS: dict[str, set[tuple[str, str]]] = {}


def register(cls: type[Journey]) -> None:
    """Record a journey class under its name; a subclass may take over its parent's name.

    Ancestry is compared by (module, class name) so that registering never imports anything:
    inside the sandbox a parent's module may re-run while its subclass already holds the name.
    """
    ref = (cls.__module__, cls.__qualname__)
    ancestors = {(c.__module__, c.__qualname__) for c in cls.__mro__}
    current = _JOURNEYS.get(cls.name)
    if current is None or current == ref or current in ancestors:
        _JOURNEYS[cls.name] = ref
        _ANCESTORS[cls.name] = ancestors
    elif ref not in _ANCESTORS.get(cls.name, set()):
        raise DuplicateJourneyError(
            f"journey name {cls.name!r} is taken by {current[0]}.{current[1]}; "
            "choose another name or subclass that journey to change it"
        )


def names() -> list[str]:
    """Every registered journey name, sorted."""
    return sorted(_JOURNEYS)


def modules() -> set[str]:
    """The modules the registered journeys are defined in."""
    return {module for module, _ in _JOURNEYS.values()}


def get(name: str) -> type[Journey]:
    """The journey class registered under `name`.

    Raises:
        UnknownJourneyError: no journey of that name is loaded.
    """
    ref = _JOURNEYS.get(name)
    if ref is None:
        known = ", ".join(names()) or "none"
        raise UnknownJourneyError(f"unknown journey {name!r} (loaded: {known})")
    return _load(ref)


def all_journeys() -> list[type[Journey]]:
    """Every registered journey class, in name order."""
    return [get(name) for name in names()]


def load_modules(modules: list[str]) -> list[type[Journey]]:
    """Import the modules that define journeys (registering them) and return their journeys.

    Only journeys whose class lives in (or under) one of `modules` are returned: a process
    that registered others (tests do) still gets exactly what it asked for.
    """
    for module in modules:
        importlib.import_module(module)
    return [
        journey
        for journey in all_journeys()
        if any(journey.__module__ == m or journey.__module__.startswith(m + ".") for m in modules)
    ]


def _load(ref: tuple[str, str]) -> type[Journey]:
    obj: object = importlib.import_module(ref[0])
    for part in ref[1].split("."):
        obj = getattr(obj, part)
    return obj  # type: ignore[return-value]
