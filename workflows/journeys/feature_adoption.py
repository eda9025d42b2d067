"""Feature adoption (seed 003, workflow 2): nudge engaged users toward a feature they never used.

Entry is by segment, in a daily run: users active for at least 14 days (first to last activity)
and still active in the last 7, who used at least two core features, but never the target
feature (default: Report Created). Emails at entry, 5 days and 10 days, each only while the
feature is still unused: using it is the goal, which ends the journey at once. Seed 003's "5 days
later / 10 days later" are counted from entry, as every journey counts its timings (win-back's
"21 days later" is day 21). The goal window is 30 days; the report also gives adoption within 14
days (the seed's measurement window). The daily run never re-enters a user within 90 days.

Change the feature by subclassing: `target_event`, `feature_name`, `core_features` and the windows
are class attributes, and `declare` builds the goal and the segment from them.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from workflows import BestTime, Goal, Journey
from workflows.segments import Segment, active_span, active_within, did_any, never


class FeatureAdoption(Journey):
    name = "feature_adoption"
    holdout = 0.15
    reentry = timedelta(days=90)

    target_event = "Report Created"
    feature_name = "reports"
    core_features: tuple[str, ...] = (
        "Dashboard Viewed",
        "Project Created",
        "Integration Connected",
        "Teammate Invited",
    )
    core_features_needed = 2
    active_at_least = timedelta(days=14)
    still_active_within = timedelta(days=7)
    adoption_window = timedelta(days=30)
    early_window = timedelta(days=14)
    tutorial_at = timedelta(days=5)
    personal_note_at = timedelta(days=10)
    best_time = BestTime(within=timedelta(hours=24))
    schedule = "0 9 * * *"  # daily at 09:00
    schedule_timezone = "UTC"

    @classmethod
    def declare(cls) -> None:
        cls.goal = Goal(cls.target_event, within=cls.adoption_window, early=cls.early_window)
        cls.segment = Segment(
            active_span(cls.active_at_least),
            active_within(cls.still_active_within),
            did_any(*cls.core_features, at_least=cls.core_features_needed),
            never(cls.target_event),
            cron=cls.schedule,
            timezone=cls.schedule_timezone,
        )

    async def steps(self) -> None:
        feature = {"name": self.feature_name, "event": self.target_event}
        await self.send("introduction", feature=feature)
        await self.sleep_until(self.entered_at + self.tutorial_at)
        # The later emails go at the user's own best hour within the day (seed 003).
        await self.send("tutorial", feature=feature, at=self.best_time)
        await self.sleep_until(self.entered_at + self.personal_note_at)
        await self.send("personal_note", feature=feature, at=self.best_time)

    @classmethod
    def preview_context(cls, event: dict[str, Any]) -> dict[str, Any]:
        return {"feature": {"name": cls.feature_name, "event": cls.target_event}}
