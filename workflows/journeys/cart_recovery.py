"""Cart recovery (seed 003, workflow 1): remind a shopper of the cart they left behind.

Starts on Product Added; once the shopper has been idle for 60 minutes (each cart change restarts
that clock) it sends a reminder with the items, 23 hours later social proof, and at 72 hours a
modest incentive. An order within 7 days ends it and counts as recovered.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from workflows import Event, Goal, Journey, Trigger, on


class CartRecovery(Journey):
    name = "cart_recovery"
    trigger = Trigger("Product Added")
    goal = Goal("Order Completed", within=timedelta(days=7))
    holdout = 0.15
    reentry = timedelta(days=7)
    listens = ("Product Removed",)

    inaction_window = timedelta(minutes=60)
    incentive_percent = 10
    incentive_code = "COMEBACK10"
    incentive_valid_for = timedelta(days=2)

    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}

    @on("Product Added")
    def item_added(self, event: Event) -> None:
        key = str(event.properties.get("product_id") or event.properties.get("sku") or "item")
        self.items[key] = dict(event.properties)

    @on("Product Removed")
    def item_removed(self, event: Event) -> None:
        key = str(event.properties.get("product_id") or event.properties.get("sku") or "item")
        self.items.pop(key, None)

    async def steps(self) -> None:
        await self.inactive_for(self.inaction_window, events=("Product Added", "Product Removed"))
        if not self.items:
            self.exit("cart_emptied")
        await self.send("reminder", items=list(self.items.values()))
        await self.sleep(timedelta(hours=23))
        await self.send("social_proof", items=list(self.items.values()))
        await self.sleep(timedelta(hours=48))
        expires = self.now() + self.incentive_valid_for
        await self.send(
            "incentive",
            items=list(self.items.values()),
            discount_percent=self.incentive_percent,
            discount_code=self.incentive_code,
            expires_on=expires.strftime("%B %d"),
        )

    @classmethod
    def preview_context(cls, event: dict[str, Any]) -> dict[str, Any]:
        return {
            "items": [event] if event else [],
            "discount_percent": cls.incentive_percent,
            "discount_code": cls.incentive_code,
            "expires_on": "two days from the send",
        }
