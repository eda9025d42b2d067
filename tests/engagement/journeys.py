"""Journeys for the engagement tests (importable: the workflow sandbox loads them)."""

from __future__ import annotations

from datetime import timedelta

from workflows import Goal, Journey, Trigger


class Engage(Journey):
    """Two marketing emails a day apart; an order within 7 days is the goal."""

    name = "t_engage"
    trigger = Trigger("Engage Requested")
    goal = Goal("Order Completed", within=timedelta(days=7))
    holdout = 0.0

    async def steps(self) -> None:
        await self.send("offer", product_url="https://shop.example.test/p/lamp?ref=mail&c=42")
        await self.sleep(timedelta(days=1))
        await self.send("reminder", product_url="https://shop.example.test/p/lamp")
