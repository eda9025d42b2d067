"""Thank a customer at once when someone they referred places a first order."""

from __future__ import annotations

from workflows import Journey, Trigger


class ReferralThanks(Journey):
    name = "referral_thanks"
    trigger = Trigger("Referral Converted")

    async def steps(self) -> None:
        await self.send("thanks", marketing=False, friend=dict(self.event.properties))
