"""Journeys for the experiments tests (importable: the workflow sandbox loads them)."""

from __future__ import annotations

from datetime import timedelta

from workflows import Goal, Journey, Trigger
from workflows.journey import Rate


class Recap(Journey):
    """A recap of the user's own week, at entry and again eight days later."""

    name = "t_recap"
    trigger = Trigger("Recap Requested")
    goal = Goal("Order Completed", within=timedelta(days=30))

    async def steps(self) -> None:
        await self.send("recap")
        await self.sleep(timedelta(days=8))
        await self.send("recap")


class Throttled(Journey):
    """One email at entry, at most two an hour across all users."""

    name = "t_throttled"
    trigger = Trigger("Segment Released")
    send_rate = Rate(2, per=timedelta(hours=1))

    async def steps(self) -> None:
        await self.send("hello")


class UrgentOffer(Journey):
    """A high-priority marketing email at entry."""

    name = "t_urgent_offer"
    trigger = Trigger("Cart Abandoned")
    priority = 10

    async def steps(self) -> None:
        await self.send("offer")


class Newsletter(Journey):
    """A low-priority marketing email at entry."""

    name = "t_newsletter"
    trigger = Trigger("Newsletter Due")

    async def steps(self) -> None:
        await self.send("issue")


class Receipts(Journey):
    """Transactional only: the global holdout leaves it alone."""

    name = "t_receipts"
    trigger = Trigger("Order Placed")
    goal = Goal("Order Completed", within=timedelta(days=7))
    global_holdout = False

    async def steps(self) -> None:
        await self.send("receipt", marketing=False)
