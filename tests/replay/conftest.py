"""Recorded histories, and running a journey name on other code for one test (a deploy)."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory

from starter.replay import load_history
from workflows import registry
from workflows.journey import Journey

HISTORIES = Path(__file__).resolve().parents[1] / "histories"


def recorded(pattern: str = "*") -> list[WorkflowHistory]:
    """The recorded histories whose file name matches `pattern` (without `.json`)."""
    paths = sorted(HISTORIES.glob(f"{pattern}.json"))
    return [load_history(path) for path in paths if path.name != "index.json"]


@pytest.fixture
def journey_code() -> Iterator[Callable[[str, str], type[Journey]]]:
    """`journey_code("tests.replay.tips_at_once", "TipsAtOnce")`: from now until the test
    ends, that class is the code of its journey name, as if a worker had loaded its module
    (JOURNEYS_JOURNEY_MODULES). Calling it again switches code; the shipped code is back after."""
    journeys, ancestors = dict(registry._JOURNEYS), dict(registry._ANCESTORS)

    def restore() -> None:
        registry._JOURNEYS.clear()
        registry._JOURNEYS.update(journeys)
        registry._ANCESTORS.clear()
        registry._ANCESTORS.update(ancestors)

    def use(module: str, name: str) -> type[Journey]:
        restore()
        cls: type[Journey] = getattr(importlib.import_module(module), name)
        registry.register(cls)  # again, when an earlier test imported the module already
        return cls

    yield use
    restore()
