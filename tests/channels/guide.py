"""The journey of docs/authoring.md's "More than email" section, exactly as printed there
(tests/channels/test_guide_journey.py checks both that they match and that it works)."""

from __future__ import annotations

from datetime import timedelta

from workflows import Goal, Journey, Trigger


class TrialEnding(Journey):
    """Three days before a trial ends: a push, or an email to users without the app; the day
    before, a text to those who agreed to texts."""

    name = "trial_ending"
    trigger = Trigger("Trial Ending Soon")
    goal = Goal("Subscription Started", within=timedelta(days=4))
    holdout = 0.1
    topic = "account_reminders"

    async def steps(self) -> None:
        plan = self.event.properties.get("plan", "Pro") if self.event else "Pro"
        await self.send("three_days_left", channel=("push", "email"), plan=plan)
        await self.sleep(timedelta(days=2))
        await self.send("last_day", channel="sms", plan=plan)
