"""Journeys for the measurement tests (importable: the workflow sandbox loads them)."""

from __future__ import annotations

from datetime import timedelta

from workflows import Goal, Journey, Trigger

STAFF_TRAIT = "staff"
QUIET_FOR = timedelta(seconds=10)
"""The simulation's quiet period, in real seconds: its users enter without a clock move, and a
purchase sent right behind the trigger comes well inside it."""


class Measured(Journey):
    """Half held out; a nudge at once and a reminder a day later; a purchase within 7 days
    (the report also gives it within 1 day). Staff accounts are not who it is for."""

    name = "t_measured"
    trigger = Trigger("Trial Started")
    goal = Goal("Order Completed", within=timedelta(days=7), early=timedelta(days=1))
    holdout = 0.5

    def suppress(self) -> str | None:
        return "staff_account" if self.profile.traits.get(STAFF_TRAIT) else None

    async def steps(self) -> None:
        await self.send("nudge")
        await self.sleep(timedelta(days=1))
        await self.send("reminder")
        await self.sleep(timedelta(days=1))


class Simulated(Measured):
    """Measured, entered as cart recovery is: once the user has been quiet for `QUIET_FOR`
    after the trigger (a purchase first: never entered), and not again within 30 days."""

    name = "t_simulated"
    trigger = Trigger("Trial Started", quiet_for=QUIET_FOR)
    reentry = timedelta(days=30)


class ComeBack(Journey):
    """Two ways in with two goals, as win-back has: a cancellation (goal: a new subscription)
    or the daily segment run (goal: coming back at all)."""

    name = "t_come_back"
    trigger = Trigger("Subscription Cancelled")
    goal = Goal("Subscription Started", within=timedelta(days=90), early=timedelta(days=7))
    returning = Goal("Session Started", within=timedelta(days=30), early=timedelta(days=3))
    holdout = 0.5

    @classmethod
    def goals(cls) -> list[Goal]:
        return [cls.goal, cls.returning]

    @classmethod
    def goal_for(cls, entry: str | None) -> Goal | None:
        return cls.returning if entry == "Segment Entered" else cls.goal

    async def steps(self) -> None:
        await self.send("hello")
