"""A journey with an A/B/n test (importable: the sandbox loads it)."""

from __future__ import annotations

from datetime import timedelta

from workflows import Experiment, Goal, Journey, Trigger


class SubjectTest(Journey):
    """Three welcome subjects, half the users held out; the winner decided automatically."""

    name = "t_subject_test"
    trigger = Trigger("Signed Up")
    goal = Goal("Activated", within=timedelta(days=3))
    holdout = 0.5

    subject = Experiment(
        "welcome_subject", {"plain": 1, "bold": 1, "emoji": 2}, auto_winner=True, min_entries=100
    )

    async def steps(self) -> None:
        variant = await self.variant(self.subject)
        await self.send("welcome", variant=variant)
        if variant == "bold":  # a timing variant too: bold follows up sooner
            await self.sleep(timedelta(days=1))
        else:
            await self.sleep(timedelta(days=2))
        await self.send("follow_up", variant=variant)
