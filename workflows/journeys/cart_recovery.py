"""Cart recovery (seed 003, workflow 1): remind a shopper of the cart they left behind.

Starts on Product Added. Once the cart has been left alone for 60 minutes (each add or removal
restarts that clock), emails go out 1 hour after the last cart change (a reminder with the items,
no discount), 24 hours after it (social proof for those products: their rating, reviews and
recent buyers when the events carry them) and 72 hours after it (a modest incentive with an
expiry date, the last touch). An order within 7 days of entry ends it and counts as recovered.

Suppressed when a cart email went to the user (or would have, for a held-out user) in the last
7 days, or when the cart is worth less than `minimum_cart_value` once the shopper has left it.
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
    social_proof_at = timedelta(hours=24)
    incentive_at = timedelta(hours=72)
    minimum_cart_value = 10.0
    """Carts worth less (sum of price x quantity, or the events' cart_value) get no emails."""
    quiet_period = timedelta(days=7)
    """No new cart journey for a user who got a cart email this recently."""
    incentive_percent = 10
    incentive_code = "COMEBACK10"
    incentive_valid_for = timedelta(days=2)

    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}
        self.cart_value: float | None = None

    @on("Product Added")
    def item_added(self, event: Event) -> None:
        self.items[_key(event)] = dict(event.properties)
        self._note_cart_value(event)

    @on("Product Removed")
    def item_removed(self, event: Event) -> None:
        self.items.pop(_key(event), None)
        self._note_cart_value(event)

    def suppress(self) -> str | None:
        last = self.last_message_at
        if last is not None and self.now() - last < self.quiet_period:
            return "cart_email_within_7_days"
        return None

    def value(self) -> float:
        """The cart's value: the latest event's cart_value if sent, else price x quantity."""
        if self.cart_value is not None:
            return self.cart_value
        total = 0.0
        for item in self.items.values():
            total += _number(item.get("price")) * (_number(item.get("quantity")) or 1.0)
        return total

    async def steps(self) -> None:
        await self.inactive_for(self.inaction_window, events=("Product Added", "Product Removed"))
        if not self.items:
            self.exit("cart_emptied")
        if self.value() < self.minimum_cart_value:
            self.exit("cart_below_minimum", suppressed=True)
        left_at = self.now() - self.inaction_window  # the last cart change
        await self.send("reminder", items=self.item_list())
        await self.sleep_until(left_at + self.social_proof_at)
        await self.send("social_proof", items=self.item_list())
        await self.sleep_until(left_at + self.incentive_at)
        expires = self.now() + self.incentive_valid_for
        await self.send(
            "incentive",
            items=self.item_list(),
            discount_percent=self.incentive_percent,
            discount_code=self.incentive_code,
            expires_on=expires.strftime("%B %d"),
        )

    def item_list(self) -> list[dict[str, Any]]:
        return list(self.items.values())

    def _note_cart_value(self, event: Event) -> None:
        for key in ("cart_value", "cart_total"):
            if key in event.properties:
                self.cart_value = _number(event.properties[key])

    @classmethod
    def preview_context(cls, event: dict[str, Any]) -> dict[str, Any]:
        return {
            "items": [event] if event else [],
            "discount_percent": cls.incentive_percent,
            "discount_code": cls.incentive_code,
            "expires_on": "two days from the send",
        }


def _key(event: Event) -> str:
    return str(event.properties.get("product_id") or event.properties.get("sku") or "item")


def _number(value: Any) -> float:
    if isinstance(value, bool):
        return 0.0
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return 0.0
    return 0.0
