"""Journeys for the measurement tests (importable: the workflow sandbox loads them)."""

from __future__ import annotations

from datetime import timedelta

from workflows import Goal, Journey, Trigger


class Measured(Journey):
    """Half held out; a nudge at once and a reminder a day later; a purchase within 7 days."""

    name = "t_measured"
    trigger = Trigger("Trial Started")
    goal = Goal("Order Completed", within=timedelta(days=7))
    holdout = 0.5

    async def steps(self) -> None:
        await self.send("nudge")
        await self.sleep(timedelta(days=1))
        await self.send("reminder")
        await self.sleep(timedelta(days=1))
