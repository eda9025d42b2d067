"""Every recorded history replays on the current code, and every shipped journey has some.

A change to a journey's steps, the engine or the models that running journeys could not
survive fails here, naming the history, before it reaches a worker (docs/deploys.md).
"""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
import re
from pathlib import Path

import pytest

import workflows.journeys
from starter.replay import SEGMENT_ENTRY, group_of, load_history, replay
from tests.histories.record import INDEX, SCENARIOS
from tests.replay.conftest import HISTORIES
from workflows.journey import Journey

FILES = sorted(p for p in HISTORIES.glob("*.json") if p.name != INDEX)
RECORD = "python -m tests.histories.record"


def shipped_journeys() -> set[str]:
    """The journey names defined in workflows/journeys (not test journeys, not subclasses)."""
    names = set()
    for info in pkgutil.iter_modules(workflows.journeys.__path__):
        module = importlib.import_module(f"workflows.journeys.{info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, Journey) and cls.__module__ == module.__name__:
                names.add(cls.name)
    return names


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
async def test_recorded_history_replays_on_this_code(path: Path):
    report = await replay([load_history(path)])
    assert report.ok, (
        f"{path.name} no longer replays: journeys like it that are running in production would "
        f"be stuck on this code. Guard the change with workflow.patched (docs/deploys.md).\n"
        + report.summary()
    )
    assert report.total == 1


def test_every_shipped_journey_has_recorded_histories():
    recorded = {group_of(load_history(path)) for path in FILES}
    missing = sorted(shipped_journeys() - recorded)
    assert not missing, (
        f"no recorded history of {', '.join(missing)}: add a scenario to SCENARIOS in "
        f"tests/histories/record.py and run `{RECORD} --only {missing[0]}`"
    )
    assert SEGMENT_ENTRY in recorded
    unscripted = sorted(shipped_journeys() - set(SCENARIOS))
    assert not unscripted, f"tests/histories/record.py records no runs of {unscripted}"


def test_the_index_describes_every_recorded_history():
    index = json.loads((HISTORIES / INDEX).read_text())
    assert sorted(index) == [p.name for p in FILES], f"re-run `{RECORD}`"
    for path in FILES:
        history = load_history(path)
        assert index[path.name]["workflow_id"] == history.workflow_id
        assert index[path.name]["journey"] == group_of(history)


def test_recorded_histories_hold_only_synthetic_addresses():
    found: dict[bytes, str] = {}
    for path in FILES:
        raw = b"".join(event.SerializeToString() for event in load_history(path).events)
        found |= {a: path.name for a in re.findall(rb"[\w.+-]+@[\w-]+(?:\.[\w-]+)+", raw)}
    assert found  # profiles travel in the histories, so the check does see addresses
    real = {a: name for a, name in found.items() if not a.endswith(b"@example.test")}
    assert not real
