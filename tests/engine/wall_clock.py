"""A journey written wrong at run time: `steps` reads the wall clock (the sandbox refuses it)."""

from __future__ import annotations

from datetime import datetime

from workflows import Journey, Trigger


class WallClock(Journey):
    name = "t_wall_clock"
    trigger = Trigger("Clock Started")

    async def steps(self) -> None:
        if datetime.now().hour >= 0:  # not deterministic: replays would see another hour
            await self.send("reminder")
