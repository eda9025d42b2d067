"""What a user did, for templates: counts and last times of their events over a window.

    {% set reports = activity("Report Created", days=7) %}
    {% if reports.count %}You created {{ reports.count }} reports last week.{% endif %}

`activity(*events, days=None)` reads the webhook's per-user event summaries
(`activities.store.EventSummary`): the total and first/last times of every event, and a count
per UTC day over the latest DAILY_DAYS days. With `days`, it counts the events of the last
`days` UTC days, today included ("last week" is `days=7`); without, every event ever. Several
event names add up. It answers as of the send's own time (the journey's clock), and reads the
database lazily, once per event name, inside the send activity: a journey's `steps` never do
I/O, and a template that does not ask costs nothing.

Where no user is at hand (a template check, a render without the send activity) the renderer's
own `activity` answers zero for everything, so a template guarded by `{% if ... .count %}`
renders either way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

from activities.store import DAILY_DAYS, EventSummary, Store


@dataclass(frozen=True)
class Activity:
    """A user's events of some names: `count` within the window (or ever), and when."""

    events: tuple[str, ...]
    count: int = 0
    """Events within the window (all of them without one)."""
    total: int = 0
    """Events ever."""
    first_at: datetime | None = None
    """The first one ever."""
    last_at: datetime | None = None
    """The latest one within the window (None: none in it)."""
    days: int | None = None
    as_of: datetime | None = None

    @property
    def days_ago(self) -> int | None:
        """Whole days from `last_at` to the send ("3 days ago"); None without a `last_at`."""
        if self.last_at is None or self.as_of is None:
            return None
        return max(0, (self.as_of - self.last_at).days)

    def __bool__(self) -> bool:
        return self.count > 0


class UnknownWindow(ValueError):
    """`days` is not a whole number of days from 1 to DAILY_DAYS."""


def no_activity(*events: str, days: int | None = None) -> Activity:
    """The renderer's default `activity`: nothing known, so zero (see the module docstring)."""
    _check(events, days)
    return Activity(events=tuple(events), days=days)


class UserActivity:
    """`activity(...)` for one user as of one time; each event's summary is read once.

    Its attributes are private: the sandbox refuses underscored names, so a template can call
    it but never reach the store (or the database URL) behind it."""

    def __init__(self, store: Store, user_id: str, as_of: datetime) -> None:
        self._store = store
        self._user_id = user_id
        self._as_of = _utc(as_of)
        self._read: dict[str, EventSummary | None] = {}

    def __call__(self, *events: str, days: int | None = None) -> Activity:
        _check(events, days)
        summaries = [s for s in map(self._summary, dict.fromkeys(events)) if s is not None]
        if not summaries:
            return Activity(events=tuple(events), days=days, as_of=self._as_of)
        total = sum(s.count for s in summaries)
        first = min(_utc(s.first_seen) for s in summaries)
        last: datetime | None
        if days is None:
            count, last = total, max(_utc(s.last_seen) for s in summaries)
        else:
            first_day = self._as_of.date() - timedelta(days=days - 1)
            since = datetime.combine(first_day, time(), UTC)
            start, end = first_day.isoformat(), self._as_of.date().isoformat()
            days_in = [(d, n) for s in summaries for d, n in (s.daily or {}).items()]
            count = sum(int(n) for d, n in days_in if start <= d <= end)
            inside = [_utc(s.last_seen) for s in summaries if since <= _utc(s.last_seen)]
            last = max(inside) if inside else None
        return Activity(
            events=tuple(events),
            count=count,
            total=total,
            first_at=first,
            last_at=last,
            days=days,
            as_of=self._as_of,
        )

    def _summary(self, event: str) -> EventSummary | None:
        if event not in self._read:
            self._read[event] = self._store.event_summary(self._user_id, event)
        return self._read[event]


def _check(events: tuple[str, ...], days: int | None) -> None:
    """A mistake in a template's call is as deterministic as a missing variable: the render
    fails (the send is skipped with `template_error`), never silently counts nothing."""
    if not events or not all(isinstance(e, str) and e for e in events):
        raise ValueError("activity() needs one or more event names")
    if days is not None and (
        isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= DAILY_DAYS
    ):
        raise UnknownWindow(f"activity(days=...) counts 1 to {DAILY_DAYS} whole days, got {days!r}")


def _utc(when: datetime) -> datetime:
    return when.astimezone(UTC) if when.tzinfo is not None else when.replace(tzinfo=UTC)
