"""Segment entry: who enters a journey on a schedule, for absence and state triggers.

Some journeys start from what a user has *not* done ("never created a report", "60 days
without activity"); no event arrives to trigger them. They declare a `Segment` instead: plain
conditions on each user's event history (the per-user, per-event summaries the webhook keeps),
checked by a daily Temporal Schedule that selects matching users with SQL and starts their
journeys. This module only describes the segment (data, no I/O); activities/segments.py turns it
into SQL and workflows/segment_entry.py runs it.

    segment = Segment(
        active_span(timedelta(days=14)),
        did_any("Dashboard Viewed", "Project Created", at_least=2),
        never("Report Created"),
        cron="0 9 * * *", timezone="Europe/Paris",
    )
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from workflows.errors import JourneyDefinitionError

SEGMENT_ENTERED = "Segment Entered"
"""The name of the entry event a segment-entered journey receives (properties: segment, as_of)."""


@dataclass(frozen=True)
class Did:
    """Did at least `at_least` of `events` (distinct names), each at least `times` times."""

    events: tuple[str, ...]
    at_least: int = 1
    times: int = 1


@dataclass(frozen=True)
class Never:
    """Has never done any of `events`."""

    events: tuple[str, ...]


@dataclass(frozen=True)
class Activity:
    """A condition on the user's activity (any event, or only `events`), as of the run.

    kind:
        "span": from first to last activity is at least `duration` (active that long);
        "within": the last activity is at most `duration` ago (active lately);
        "inactive": the last activity is more than `duration` ago (gone quiet);
        "since": the first activity is at least `duration` ago (a user that long).
    """

    kind: Literal["span", "within", "inactive", "since"]
    duration: timedelta
    events: tuple[str, ...] | None = None


Condition = Did | Never | Activity


def did(event: str, *, times: int = 1) -> Did:
    """Did `event` at least `times` times."""
    return Did((event,), 1, times)


def did_any(*events: str, at_least: int = 1) -> Did:
    """Did at least `at_least` different ones of `events` ("used two core features")."""
    if not events or not 1 <= at_least <= len(events):
        raise JourneyDefinitionError(f"did_any needs 1 <= at_least <= {len(events)} events")
    return Did(events, at_least)


def never(*events: str) -> Never:
    """Never did any of `events` ("has never created a report")."""
    if not events:
        raise JourneyDefinitionError("never() needs at least one event name")
    return Never(events)


def active_span(duration: timedelta, *, events: tuple[str, ...] | None = None) -> Activity:
    """Active over at least `duration`: from first to last activity."""
    return Activity("span", duration, events)


def active_within(duration: timedelta, *, events: tuple[str, ...] | None = None) -> Activity:
    """Did something within the last `duration`."""
    return Activity("within", duration, events)


def inactive_for(duration: timedelta, *, events: tuple[str, ...] | None = None) -> Activity:
    """Has done nothing for more than `duration`."""
    return Activity("inactive", duration, events)


def first_seen_before(duration: timedelta) -> Activity:
    """First seen at least `duration` ago (a user for that long)."""
    return Activity("since", duration)


class Segment:
    """The users a journey enters on a schedule: every condition must hold.

    Args:
        *conditions: `did`, `did_any`, `never`, `active_span`, `active_within`, `inactive_for`,
            `first_seen_before`.
        cron: when the schedule runs (default daily at 09:00).
        timezone: the IANA time zone of `cron` (default UTC).
        page_size: users selected and started per activity (one page, one history event).
    """

    def __init__(
        self,
        *conditions: Condition,
        cron: str = "0 9 * * *",
        timezone: str = "UTC",
        page_size: int = 500,
    ) -> None:
        if not conditions:
            raise JourneyDefinitionError("Segment needs at least one condition")
        if not 1 <= page_size <= 10_000:
            raise JourneyDefinitionError("Segment page_size must be between 1 and 10000")
        for condition in conditions:
            if not isinstance(condition, Did | Never | Activity):
                raise JourneyDefinitionError(f"not a segment condition: {condition!r}")
            if isinstance(condition, Activity) and condition.duration <= timedelta(0):
                raise JourneyDefinitionError("segment durations must be positive")
        self.conditions: tuple[Condition, ...] = conditions
        self.cron = cron
        self.timezone = timezone
        self.page_size = page_size

    def __repr__(self) -> str:
        return f"Segment({len(self.conditions)} conditions, cron={self.cron!r}, tz={self.timezone})"
