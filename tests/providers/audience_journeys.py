"""A journey that drives a Mailchimp audience (importable: the workflow sandbox loads it)."""

from __future__ import annotations

from datetime import timedelta

from workflows import Goal, Journey, Trigger


class AudienceCart(Journey):
    """Seed 003's Mailchimp pattern: the cart's state as a tag and a merge field, which a
    Customer Journey Builder journey triggers on; half the users held out."""

    name = "t_audience_cart"
    trigger = Trigger("Product Added")
    goal = Goal("Order Completed", within=timedelta(days=7))
    holdout = 0.5

    async def steps(self) -> None:
        price = self.event.properties.get("price") if self.event else None
        await self.sleep(timedelta(hours=1))
        await self.send(
            "abandoned",
            channel="audience",
            tags=["cart_abandoner"],
            merge_fields={"CARTVAL": price},
        )
        await self.sleep(timedelta(hours=23))
        await self.send(
            "still_abandoned",
            channel="audience",
            tags=["cart_abandoner_24h"],
            remove_tags=["cart_abandoner"],
        )
