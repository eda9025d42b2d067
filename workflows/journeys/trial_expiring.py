"""Trial expiring (seed 000's "trial expiration warning"): a reminder 3 days before a trial ends.

Starts on Trial Started, whose `trial_end` property (ISO 8601 or Unix seconds, as Stripe sends
it) says when the trial ends. One email 3 days before that; at once if the trial is shorter.
The trial turning into a paid subscription ends it as a conversion: Plan Upgraded, or
Subscription Started (what Stripe's trialing -> active becomes, starter/sources/stripe.py).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from workflows import Goal, Journey, Trigger


class TrialExpiring(Journey):
    name = "trial_expiring"
    trigger = Trigger("Trial Started")
    goal = Goal("Plan Upgraded", "Subscription Started", within=timedelta(days=45))
    holdout = 0.15
    reentry = timedelta(days=30)

    warn_before = timedelta(days=3)

    async def steps(self) -> None:
        trial_end = trial_end_of(self.event.properties if self.event else {})
        if trial_end is None:
            self.exit("no_trial_end")
        if self.now() >= trial_end:
            self.exit("trial_already_over")
        await self.sleep_until(trial_end - self.warn_before, step="until 3 days before trial end")
        days_left = max(1, round((trial_end - self.now()) / timedelta(days=1)))
        await self.send("trial_ending", trial_end=trial_end.strftime("%B %d"), days_left=days_left)

    @classmethod
    def preview_context(cls, event: dict[str, Any]) -> dict[str, Any]:
        end = trial_end_of(event)
        return {
            "trial_end": end.strftime("%B %d") if end else "in three days",
            "days_left": cls.warn_before.days,
        }


def trial_end_of(properties: dict[str, Any]) -> datetime | None:
    """The trial's end from `trial_end`: ISO 8601 text or Unix seconds; None if absent or bad."""
    value = properties.get("trial_end")
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return datetime.fromtimestamp(value, UTC)
        if isinstance(value, str):
            when = datetime.fromisoformat(value.replace("Z", "+00:00"))
            return when if when.tzinfo else when.replace(tzinfo=UTC)
    except (ValueError, OverflowError, OSError):
        return None
    return None
