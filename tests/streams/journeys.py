"""A journey for the stream tests (importable: `journeys consume` processes and the sandbox load
it): one start, one signal, one email for each, so every effect of an event can be counted."""

from __future__ import annotations

from datetime import timedelta

from workflows import Journey, Trigger


class Welcome(Journey):
    """Welcome at once, then congratulate once the user activates (a signal), or give up."""

    name = "s_welcome"
    trigger = Trigger("Signed Up")
    listens = ("Activated",)

    async def steps(self) -> None:
        await self.send("welcome")
        if await self.wait_for("Activated", timeout=timedelta(days=2)):
            await self.send("well_done")
