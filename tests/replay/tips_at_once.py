"""A team's change to onboarding, made carelessly: the first tips go out with the welcome.

The shipped journey sleeps until day 2 between the two sends; this one sends at once. A
running onboarding that had already started that sleep cannot continue on this code.
"""

from workflows.journeys import Onboarding


class TipsAtOnce(Onboarding):
    async def steps(self) -> None:
        await self.send("welcome", marketing=False)
        await self.send("first_tips")  # was: await self.sleep_until(entered_at + 2 days)
        await self.sleep_until(self.entered_at + self.second_tips_at)
        await self.send("second_tips")
