"""An unrelated journey that tries to take a shipped journey's name (must be refused)."""

from workflows import Journey, Trigger


class Impostor(Journey):
    name = "cart_recovery"
    trigger = Trigger("X")

    async def steps(self) -> None: ...
