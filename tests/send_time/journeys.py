"""A journey whose second message waits for the user's best hour (the sandbox imports it)."""

from __future__ import annotations

from datetime import timedelta

from workflows import BestTime, Goal, Journey, Trigger


class Timed(Journey):
    name = "t_timed"
    trigger = Trigger("Signed Up")
    goal = Goal("Activated", within=timedelta(days=7))
    holdout = 0.5

    async def steps(self) -> None:
        await self.send("welcome")
        await self.sleep(timedelta(days=1))
        await self.send("tip", at=BestTime(within=timedelta(hours=24)))
