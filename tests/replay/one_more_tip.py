"""A step added at the end of onboarding: a third tip on day 10."""

from datetime import timedelta

from workflows.journeys import Onboarding


class OneMoreTip(Onboarding):
    async def steps(self) -> None:
        await super().steps()
        await self.sleep_until(self.entered_at + timedelta(days=10))
        await self.send("third_tips")
