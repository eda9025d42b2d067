"""Win-back (seed 003, workflow 3): bring back a customer who cancelled or went quiet.

Entry: Subscription Cancelled, or by segment in a daily run: no activity for 60 days after at
least 30 days of activity (first to last activity). Not for customers with a negative support
experience (a CRM trait) or who opted out of win-back messages.

Emails, counted from entry: 7 days (a simple goodbye asking for feedback, no pitch), 28 days (what
is new since they left) and 73 days (a re-activation offer with an expiry date). The seed says
"Email 2 (21 days later)" and "Email 3 (45 days later)"; we read each as later than the email
before it (7, 7+21 = 28, 28+45 = 73), since a 45-day offer would otherwise come before the 21-day
update was read. Subscription Started within 90 days of entry is the goal.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from workflows import Goal, Journey, Trigger
from workflows.segments import Segment, active_span, inactive_for


class WinBack(Journey):
    name = "win_back"
    trigger = Trigger("Subscription Cancelled")
    goal = Goal("Subscription Started", within=timedelta(days=90))
    holdout = 0.15
    reentry = timedelta(days=180)

    dormant_for = timedelta(days=60)
    active_at_least = timedelta(days=30)
    feedback_at = timedelta(days=7)
    whats_new_at = timedelta(days=28)
    offer_at = timedelta(days=73)
    offer_percent = 30
    offer_code = "WELCOMEBACK30"
    offer_valid_for = timedelta(days=14)
    negative_support_trait = "negative_support_experience"
    opt_out_trait = "win_back_opt_out"
    schedule = "0 10 * * *"  # daily at 10:00
    schedule_timezone = "UTC"

    @classmethod
    def declare(cls) -> None:
        cls.segment = Segment(
            inactive_for(cls.dormant_for),
            active_span(cls.active_at_least),
            cron=cls.schedule,
            timezone=cls.schedule_timezone,
        )

    def suppress(self) -> str | None:
        traits = self.profile.traits
        if _truthy(traits.get(self.negative_support_trait)):
            return "negative_support_experience"
        if _truthy(traits.get(self.opt_out_trait)):
            return "opted_out_of_win_back"
        return None

    async def steps(self) -> None:
        await self.sleep_until(self.entered_at + self.feedback_at)
        await self.send("feedback")
        await self.sleep_until(self.entered_at + self.whats_new_at)
        await self.send("whats_new")
        await self.sleep_until(self.entered_at + self.offer_at)
        expires = self.now() + self.offer_valid_for
        await self.send(
            "offer",
            discount_percent=self.offer_percent,
            discount_code=self.offer_code,
            expires_on=expires.strftime("%B %d"),
        )

    @classmethod
    def preview_context(cls, event: dict[str, Any]) -> dict[str, Any]:
        return {
            "discount_percent": cls.offer_percent,
            "discount_code": cls.offer_code,
            "expires_on": "two weeks from the send",
        }


def _truthy(value: Any) -> bool:
    """A CRM flag as sent: True, "true", "yes", 1."""
    if isinstance(value, str):
        return value.strip().lower() in ("true", "yes", "1", "y")
    return bool(value)
