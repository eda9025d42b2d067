"""Journeys for the fault tests (importable: worker processes and the sandbox load them)."""

from __future__ import annotations

from datetime import timedelta

from workflows import Journey, Trigger

DAY = timedelta(days=1)


class Drip(Journey):
    """Three emails on timers: one now, one a day later, one two days after that."""

    name = "f_drip"
    trigger = Trigger("Signed Up")

    async def steps(self) -> None:
        await self.send("welcome")
        await self.sleep(DAY)
        await self.send("tips")
        await self.sleep(2 * DAY)
        await self.send("offer")


class Nudge(Journey):
    """Waits up to two days for the checklist: congratulates if it comes, nudges if not."""

    name = "f_nudge"
    trigger = Trigger("Trial Started")
    listens = ("Checklist Done",)

    async def steps(self) -> None:
        done = await self.wait_for("Checklist Done", timeout=2 * DAY)
        await self.send("congrats" if done else "nudge")


class Reminder(Journey):
    """A reminder worth sending for an hour only, then a last call a day later."""

    name = "f_reminder"
    trigger = Trigger("Cart Saved")
    freshness = timedelta(hours=1)

    async def steps(self) -> None:
        await self.send("reminder")
        await self.sleep(DAY)
        await self.send("last_call")


class Flash(Reminder):
    """The same steps, but the first message is worthless after a few seconds (a flash sale)."""

    name = "f_flash"
    trigger = Trigger("Flash Sale")
    freshness = timedelta(seconds=3)
