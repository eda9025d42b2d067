"""The smallest journey on the bare Temporal SDK: the ceiling `bench.ingest` compares our worker
with (`bench.raw_worker` runs it).

An entry write (a local activity, as the engine's entry is), one activity (the send: a row
written once per idempotency key) and a durable timer: what `bench_welcome` does on the journeys
engine, with no journeys code, no pydantic models and no payload codec, on the SDK's defaults
(sandbox included). Started as the router starts a journey: signal-with-start, the trigger
event as the `event` signal. This module is imported in the sandbox for every run, so it
imports only the SDK and the standard library; the activities are named, not imported.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio import workflow

ENTER = "raw_enter"
SEND = "raw_send"
TIMEOUT = timedelta(seconds=30)


@dataclass
class RawStart:
    user_id: str
    wait_seconds: float = 86_400.0
    """The timer after the send; the journey stays open on it (a day, as bench_welcome's goal)."""


@dataclass
class RawWrite:
    """What both activities write: the entry row, or the send row keyed by `key`."""

    workflow_id: str
    run_id: str
    user_id: str
    key: str


@workflow.defn(name="RawJourney")
class RawJourneyWorkflow:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    @workflow.signal(name="event")
    def event(self, event: dict[str, Any]) -> None:
        self.events.append(event)

    @workflow.run
    async def run(self, start: RawStart) -> int:
        await workflow.wait_condition(lambda: bool(self.events))  # the trigger (signal-with-start)
        info = workflow.info()
        write = RawWrite(info.workflow_id, info.run_id, start.user_id, f"{info.run_id}:send")
        await workflow.execute_local_activity(ENTER, write, start_to_close_timeout=TIMEOUT)
        await workflow.execute_activity(SEND, write, start_to_close_timeout=TIMEOUT)
        await workflow.sleep(timedelta(seconds=start.wait_seconds))
        return len(self.events)
