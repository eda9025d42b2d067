"""The same change as tips_at_once.py, made safely: guarded by `workflow.patched`.

Journeys that started on the old code (no patch marker in their history) keep the day-2
sleep; journeys that start on this code send the first tips at once.
"""

from temporalio import workflow

from workflows.journeys import Onboarding


class TipsAtOncePatched(Onboarding):
    async def steps(self) -> None:
        await self.send("welcome", marketing=False)
        if not workflow.patched("onboarding-tips-at-once"):
            await self.sleep_until(self.entered_at + self.first_tips_at)
        await self.send("first_tips")
        await self.sleep_until(self.entered_at + self.second_tips_at)
        await self.send("second_tips")
