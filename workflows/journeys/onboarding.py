"""Onboarding (seeds 001 and 004): welcome a new user, then two tips, until they activate.

Starts on Signed Up: a welcome at once, tips on day 2 and day 5. Reaching the activation
milestone (Activated) ends it at once: the seeds' negative trigger, so a fast user never gets
"getting started" tips they no longer need.
"""

from __future__ import annotations

from datetime import timedelta

from workflows import Goal, Journey, Trigger


class Onboarding(Journey):
    name = "onboarding"
    trigger = Trigger("Signed Up")
    goal = Goal("Activated", within=timedelta(days=14))
    holdout = 0.15

    first_tips_at = timedelta(days=2)
    second_tips_at = timedelta(days=5)

    async def steps(self) -> None:
        # The welcome answers the user's own sign-up: sent at once, even in quiet hours.
        await self.send("welcome", marketing=False)
        await self.sleep_until(self.entered_at + self.first_tips_at)
        await self.send("first_tips")
        await self.sleep_until(self.entered_at + self.second_tips_at)
        await self.send("second_tips")
