"""Journeys for the delivery tests (importable: the workflow sandbox loads them)."""

from __future__ import annotations

from datetime import timedelta

from workflows import Goal, Journey, Trigger


class Promo(Journey):
    """Three marketing emails a day apart, then a transactional one; a goal ends it."""

    name = "t_promo"
    trigger = Trigger("Promo Requested")
    goal = Goal("Order Completed", within=timedelta(days=7))

    async def steps(self) -> None:
        await self.send("first", offer="10% off")
        await self.sleep(timedelta(days=1))
        await self.send("second", offer="15% off")
        await self.sleep(timedelta(days=1))
        await self.send("third", offer="20% off")
        await self.sleep(timedelta(days=1))
        await self.send("receipt", marketing=False, offer="none")


class Inbox(Journey):
    """An in-app tip suggesting the team plan."""

    name = "t_inbox"
    trigger = Trigger("Invite Sent")

    async def steps(self) -> None:
        await self.send("team_plan", channel="in_app", seats=3)


class Urgent(Journey):
    """One email that is worthless after a few seconds (the freshness test)."""

    name = "t_urgent"
    trigger = Trigger("Flash Sale")
    freshness = timedelta(seconds=2)

    async def steps(self) -> None:
        await self.send("first", offer="flash")
        await self.sleep(timedelta(days=1))


class AtRisk(Journey):
    """Flags an at-risk account to the success team's tool through the webhook channel."""

    name = "t_at_risk"
    trigger = Trigger("Usage Dropped")

    async def steps(self) -> None:
        await self.send("flag_account", channel="webhook", marketing=False, seats=12)
