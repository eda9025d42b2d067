"""Which journeys exist, by name.

The worker passes this module through the workflow sandbox, so it holds only strings
(module and class name). The engine re-imports the journey's module inside the sandbox,
where its code is checked for determinism like any workflow code.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from workflows.errors import (
    DuplicateJourneyError,
    JourneyError,
    JourneyLoadError,
    UnknownJourneyError,
)

if TYPE_CHECKING:
    from workflows.journey import Journey

_JOURNEYS: dict[str, tuple[str, str]] = {}
_ANCESTORS: dict[str, set[tuple[str, str]]] = {}
_DEFINED: set[tuple[str, str]] = set()
"""Every journey class ever registered, also those a subclass took the name from: a module whose
journeys were all replaced by subclasses elsewhere still defines journeys."""


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
        _DEFINED.add(ref)
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


@dataclass(frozen=True)
class Problem:
    """Why a module named in (or found under) JOURNEYS_JOURNEY_MODULES gives no journeys."""

    module: str
    """The module, with the line of its own code the error passed through when there is one."""
    error: str

    def __str__(self) -> str:
        return f"{self.module}: {self.error}"


@dataclass
class Loaded:
    """What `discover` found: the journeys, and every problem at once rather than the first."""

    journeys: list[type[Journey]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def discover(modules: Sequence[str]) -> Loaded:
    """Import `modules`, and every module inside those that are packages, and collect the
    journeys they define and what went wrong, module by module.

    A package's modules are imported too (recursively), so a team's package is named once. A
    name that imports but defines no journey is a problem: it used to load nothing, silently.
    Only journeys whose class lives in (or under) one of `modules` are returned: a process that
    registered others (tests do) still gets exactly what it asked for.
    """
    loaded = Loaded()
    failed: list[str] = []
    for module in modules:
        _import_tree(module, loaded.problems, failed)
    for module in modules:
        if any(_under(f, module) or _under(module, f) for f in failed):
            continue  # its import error says more than "no journey" would
        if not any(_under(defined, module) for defined, _ in _DEFINED):
            loaded.problems.append(
                Problem(module, "defines no journey (JOURNEYS_JOURNEY_MODULES names it)")
            )
    loaded.journeys = [
        _load(ref)
        for _, ref in sorted(_JOURNEYS.items())
        if any(_under(ref[0], m) for m in modules) and not any(_under(ref[0], f) for f in failed)
    ]
    return loaded


def load_modules(modules: Sequence[str]) -> list[type[Journey]]:
    """Import the modules that define journeys (a package: every module in it) and return their
    journeys, as `discover` does.

    Raises:
        JourneyLoadError: any module fails to import or a name defines no journey; the message
            lists every problem (`journeys check` prints the same, journey by journey).
    """
    loaded = discover(modules)
    if loaded.problems:
        raise JourneyLoadError("\n".join(map(str, loaded.problems)))
    return loaded.journeys


def _import_tree(name: str, problems: list[Problem], failed: list[str]) -> None:
    """Import `name` and, if it is a package, every module under it; errors go to `problems`."""
    try:
        module = importlib.import_module(name)
    except Exception as err:  # whatever an author's module raises, it is theirs to read
        failed.append(name)
        message = str(err) if isinstance(err, JourneyError) else f"{type(err).__name__}: {err}"
        problems.append(Problem(_origin(err, name), message))
        return
    for info in pkgutil.iter_modules(getattr(module, "__path__", None) or [], f"{name}."):
        _import_tree(info.name, problems, failed)


def _origin(err: BaseException, name: str) -> str:
    """The innermost frame of `name`'s own code the error passed through, as "module, line N":
    the class statement of a journey its validation refused, say."""
    origin = name
    frame = err.__traceback__
    while frame is not None:
        module = frame.tb_frame.f_globals.get("__name__", "")
        if _under(module, name):
            origin = f"{module}, line {frame.tb_lineno}"
        frame = frame.tb_next
    return origin


def _under(module: str, name: str) -> bool:
    return module == name or module.startswith(f"{name}.")


def _load(ref: tuple[str, str]) -> type[Journey]:
    obj: object = importlib.import_module(ref[0])
    for part in ref[1].split("."):
        obj = getattr(obj, part)
    return obj  # type: ignore[return-value]
