"""A journey whose first step sends at once: what event-to-send latency is measured on."""

from __future__ import annotations

from datetime import timedelta

from workflows import Goal, Journey, Trigger


class InstantWelcome(Journey):
    """Signed Up -> welcome email at once; Activated within a day ends it."""

    name = "bench_welcome"
    trigger = Trigger("Signed Up")
    goal = Goal("Activated", within=timedelta(days=1))
    holdout = 0.0  # everyone gets the email, so every entry measures a send

    async def steps(self) -> None:
        await self.send("welcome")
