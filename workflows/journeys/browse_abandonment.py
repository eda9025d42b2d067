"""Browse abandonment (seed 000, the furniture store): the same product viewed 3 times, no purchase.

The journey is entered at the third view of one product within 7 days (views of different
products do not add up). An hour later, if no order has come, one email with a 5 % offer on that
product. An order within 7 days is the goal; an order before the third view means no entry.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from workflows import Goal, Journey, Trigger


class BrowseAbandonment(Journey):
    name = "browse_abandonment"
    trigger = Trigger("Product Viewed", times=3, same="product_id", within=timedelta(days=7))
    goal = Goal("Order Completed", within=timedelta(days=7))
    holdout = 0.15
    reentry = timedelta(days=30)

    offer_after = timedelta(hours=1)
    offer_percent = 5
    offer_code = "LOOKAGAIN5"
    offer_valid_for = timedelta(days=3)

    async def steps(self) -> None:
        await self.sleep(self.offer_after)
        product = dict(self.event.properties) if self.event else {}
        expires = self.now() + self.offer_valid_for
        await self.send(
            "offer",
            product=product,
            discount_percent=self.offer_percent,
            discount_code=self.offer_code,
            expires_on=expires.strftime("%B %d"),
        )

    @classmethod
    def preview_context(cls, event: dict[str, Any]) -> dict[str, Any]:
        return {
            "product": event,
            "discount_percent": cls.offer_percent,
            "discount_code": cls.offer_code,
            "expires_on": "three days from the send",
        }
