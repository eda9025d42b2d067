"""Ask for a review three days after the order arrives, unless the customer has written one."""

from __future__ import annotations

from datetime import timedelta

from workflows import Goal, Journey, Trigger


class ReviewRequest(Journey):
    name = "review_request"
    trigger = Trigger("Order Delivered")
    goal = Goal("Review Submitted", within=timedelta(days=14))
    holdout = 0.1
    reentry = timedelta(days=30)

    ask_after = timedelta(days=3)

    async def steps(self) -> None:
        await self.sleep(self.ask_after)
        await self.send("ask", product=dict(self.event.properties))
