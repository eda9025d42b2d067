"""Win-back (seed 003, workflow 3): bring back a customer who cancelled or went quiet.

Entry: Subscription Cancelled, or by segment in a daily run: no activity for 60 days after at
least 30 days of activity (first to last activity). Not for customers with a negative support
experience (a CRM trait) or who opted out of win-back messages.

Emails, counted from entry: 7 days (a simple goodbye asking for feedback, no pitch), 21 days (what
is new since they left) and 45 days (a re-activation offer with an expiry date). Seed 003 writes
"Email 2 (21 days later)" and "Email 3 (45 days later)"; like its cart timings ("24 hours after
trigger") and feature adoption's "5 days later / 10 days later" (days 0, 5, 10), we count each
from the trigger, so every journey reads "N days later" the same way.

The goal depends on how the customer entered. Cancelled: Subscription Started within 90 days.
Dormant: coming back, any tracked activity (or `return_events`) within 90 days, counted as
re-activated (seed 003: "login resumption"); a return ends the journey at once. The report gives
conversion within 7 days too (the seed's re-engagement window) and splits both entry paths.

Suppression (negative support experience, opted out) is asked again before every email, on the
profile as it is then: a flag set on day 10 stops the day-21 and day-45 emails.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from workflows import BestTime, Event, Goal, Journey, Trigger
from workflows.journey import ANY_EVENT
from workflows.segments import SEGMENT_ENTERED, Segment, active_span, inactive_for


class WinBack(Journey):
    name = "win_back"
    trigger = Trigger("Subscription Cancelled")
    goal = Goal("Subscription Started", within=timedelta(days=90), early=timedelta(days=7))
    """The goal of a cancelled customer; a dormant one's is `return_goal`."""
    return_goal: Goal
    holdout = 0.15
    reentry = timedelta(days=180)

    dormant_for = timedelta(days=60)
    active_at_least = timedelta(days=30)
    feedback_at = timedelta(days=7)
    whats_new_at = timedelta(days=21)
    offer_at = timedelta(days=45)
    best_time = BestTime(within=timedelta(hours=24))
    """The later emails go at the user's own best hour within the day (seed 003)."""
    return_events: tuple[str, ...] = ()
    """What counts as a dormant customer's return; empty: any event they send."""
    reactivation_window = timedelta(days=90)
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
        cls.return_goal = Goal(
            *(cls.return_events or (ANY_EVENT,)),
            within=cls.reactivation_window,
            early=timedelta(days=7),
            where=cls._is_return,
        )

    @classmethod
    def _is_return(cls, event: Event) -> bool:
        """Anything but another cancellation (or a segment entry) is the customer back."""
        leaving = cls.trigger.events if cls.trigger is not None else ()
        return event.name not in leaving and event.name != SEGMENT_ENTERED

    @classmethod
    def goals(cls) -> list[Goal]:
        return [*super().goals(), cls.return_goal]

    @classmethod
    def goal_for(cls, entry: str | None) -> Goal | None:
        return cls.return_goal if entry == SEGMENT_ENTERED else cls.goal

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
        await self.send("whats_new", at=self.best_time)
        await self.sleep_until(self.entered_at + self.offer_at)
        expires = self.now() + self.offer_valid_for
        await self.send(
            "offer",
            at=self.best_time,
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
