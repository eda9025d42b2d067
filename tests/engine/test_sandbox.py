"""Journey modules run in Temporal's workflow sandbox, even though the engine's own modules
are passed through it (worker.PASSTHROUGH): a wall-clock read in `steps` is refused."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from pathlib import Path

from temporalio.api.enums.v1 import EventType

from tests.engine.wall_clock import WallClock
from worker import PASSTHROUGH, write_bytecode


def test_journey_modules_are_not_passed_through():
    # A passthrough name passes its submodules through too: `workflows` would take
    # `workflows.journeys.*` out of the sandbox with it.
    assert "workflows" not in PASSTHROUGH and "workflows.journeys" not in PASSTHROUGH
    assert not any(name.startswith("workflows.journeys") for name in PASSTHROUGH)


async def test_a_wall_clock_read_in_steps_fails_the_workflow_task_and_sends_nothing(stack_for):
    stack = await stack_for(WallClock)
    user = stack.user("clock")
    await stack.track("Clock Started", user)
    handle = stack.handle("t_wall_clock", user)

    failure = None
    for _ in range(300):  # the worker's first attempt at the steps, within a few seconds
        async for event in handle.fetch_history_events():
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
                failure = event.workflow_task_failed_event_attributes.failure
        if failure is not None:
            break
        await asyncio.sleep(0.02)

    assert failure is not None, "the wall-clock read was not refused"
    assert failure.application_failure_info.type == "RestrictedWorkflowAccessError"
    assert "datetime.datetime.now" in failure.message
    assert stack.outbox(user) == []
    await handle.terminate("test over")


def test_the_worker_writes_bytecode_for_the_modules_each_sandbox_imports():
    # Without a .pyc (PYTHONDONTWRITEBYTECODE=1) every new journey workflow compiled the
    # engine and its journey module from source; the worker writes them once instead.
    # (WallClock is registered by its import above, like any journey module.)
    cached = [
        Path(importlib.util.cache_from_source(sys.modules[name].__file__))
        for name in ("workflows.engine", WallClock.__module__)
    ]
    for path in cached:
        path.unlink(missing_ok=True)
    write_bytecode()
    assert all(path.is_file() for path in cached)
