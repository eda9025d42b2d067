"""Journeys the scale benchmarks open by the thousand (`bench.memory`, `bench.timers`).

Loaded by the worker (JOURNEYS_JOURNEY_MODULES) and imported inside Temporal's sandbox for every
new journey, so this module imports only the authoring API.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from workflows import Journey, Trigger


class BenchOpen(Journey):
    """Entered, then waiting 30 days on a durable timer: an open journey, as most of them are."""

    name = "bench_open"
    trigger = Trigger("Bench Opened")

    async def steps(self) -> None:
        await self.sleep(timedelta(days=30), step="waiting")


class BenchTimer(Journey):
    """Entered, then asleep until the instant in its entry event's `due` property (ISO 8601),
    then one in-app message (no address, cap or quiet hours in the way) and done.

    `bench.timers` compares `due` with the message's `journey_time` (the journey's clock when
    it woke: the timer fired and a worker took the task) and its `created_at` (the wall clock
    when the send activity wrote it: after any replay of an evicted journey, too)."""

    name = "bench_timer"
    trigger = Trigger("Bench Timer Set")

    async def steps(self) -> None:
        assert self.event is not None
        due = datetime.fromisoformat(str(self.event.properties["due"]))
        await self.sleep_until(due, step="timer")
        await self.send("fired", channel="in_app", marketing=False)
