"""A journey that a later version of the code no longer has (retired, or renamed)."""

from datetime import timedelta

from workflows import Journey, Trigger


class Retired(Journey):
    name = "t_retired"
    trigger = Trigger("Retired Journey Started")

    async def steps(self) -> None:
        await self.sleep(timedelta(days=1))
        await self.send("reminder")
