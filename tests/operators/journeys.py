"""Journeys for the operators' tests: each test has its own (names are global on the shared dev
server, so one test's listing never sees another's users). Importable: the sandbox loads them."""

from __future__ import annotations

from datetime import timedelta

from workflows import Goal, Journey, Trigger


class Listed(Journey):
    """Entered at once; a send, then long waits, so its users stay in it. Half held out."""

    name = "op_users"
    trigger = Trigger("Op Signed Up")
    goal = Goal("Op Activated", within=timedelta(days=30))
    holdout = 0.5
    reentry = timedelta(days=7)

    async def steps(self) -> None:
        await self.send("welcome")
        await self.sleep(timedelta(days=2))
        await self.send("tips")
        await self.sleep(timedelta(days=5))


class Explained(Listed):
    name = "op_explain"


class Removable(Listed):
    name = "op_remove"


class Bulk(Listed):
    name = "op_bulk"


class ByCommand(Listed):
    name = "op_cli"


class Quiet(Journey):
    """Qualifies once the cart has been quiet an hour: until then running, but not entered."""

    name = "op_quiet"
    trigger = Trigger("Op Cart", quiet_for=timedelta(hours=1))

    async def steps(self) -> None:
        await self.send("reminder")
