"""What happened to a journey's emails after they were sent, per step, for the report.

From `message_events` (activities/tracking.py and activities/feedback.py) and the message log:
per step, the messages opened, clicked, bounced (hard and soft), complained about and
unsubscribed from, each message counted once whatever the number of events; the journey's
complaint rate over its delivered emails; and the revenue of goals reached within the
attribution window after a click.

Unsubscribes are the ESP's (matched to their message) and those from our own link, which names
the journey but not the step: they count at the journey's last email to the user before they
unsubscribed. Click revenue is attribution, not causation: the holdout lift stays the headline,
and a click-through buyer may have bought anyway (the holdout says how many would have).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Row, Table, distinct, func, select
from sqlalchemy.engine import Connection

from activities.store import JourneyRun, MessageEvent, OutboxMessage, ProfileRow, Store

EVENTS: Table = MessageEvent.__table__  # type: ignore[attr-defined]
RUNS: Table = JourneyRun.__table__  # type: ignore[attr-defined]
OUTBOX: Table = OutboxMessage.__table__  # type: ignore[attr-defined]
PROFILES: Table = ProfileRow.__table__  # type: ignore[attr-defined]

COMPLAINT_LIMIT = 0.003
"""The spam rate Gmail and Yahoo hold bulk senders under (0.3 %): above it, mail is filtered."""

DEFAULT_ATTRIBUTION = timedelta(days=7)
"""The click attribution window of a journey no longer loaded (its goal's window unknown)."""

KINDS = ("open", "click", "unsubscribe", "bounce", "soft_bounce", "complaint")


@dataclass
class StepEngagement:
    """One step's emails: how many messages had each kind of event."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    click_conversions: int = 0
    click_revenue: float = 0.0


@dataclass
class JourneyEngagement:
    steps: dict[str, StepEngagement] = field(default_factory=dict)
    totals: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    emails_sent: int = 0
    """Emails that went (or may have gone: unconfirmed) to a provider or the outbox."""
    click_conversions: int = 0
    """Treatment entries whose goal came within the window after a click on any email."""
    click_revenue: float = 0.0

    @property
    def emails_delivered(self) -> int:
        return max(0, self.emails_sent - self.totals["bounce"])

    @property
    def complaint_rate(self) -> float | None:
        delivered = self.emails_delivered
        return self.totals["complaint"] / delivered if delivered else None


def journey_engagement(
    store: Store, journey: str, since: datetime | None, window: timedelta | None
) -> JourneyEngagement:
    """The journey's engagement for entries since `since`; `window` is its goal's."""
    window = window or DEFAULT_ATTRIBUTION
    result = JourneyEngagement()
    where: list[ColumnElement[bool]] = [
        EVENTS.c.journey == journey,
        EVENTS.c.message_key.is_not(None),
    ]
    if since is not None:
        where.append(RUNS.c.entered_at >= since)
    joined = EVENTS.join(RUNS, RUNS.c.run_id == EVENTS.c.run_id)
    counts = (
        select(EVENTS.c.step, EVENTS.c.kind, func.count(distinct(EVENTS.c.message_key)))
        .select_from(joined)
        .where(*where, EVENTS.c.kind.in_([k for k in KINDS if k != "unsubscribe"]))
        .group_by(EVENTS.c.step, EVENTS.c.kind)
    )
    unsubscribes = (
        select(EVENTS.c.step, EVENTS.c.message_key, EVENTS.c.user_id)
        .select_from(joined)
        .where(*where, EVENTS.c.kind == "unsubscribe")
    )
    clicks = (
        select(EVENTS.c.step, RUNS.c.run_id, EVENTS.c.at, RUNS.c.goal_at, RUNS.c.revenue)
        .select_from(joined)
        .where(
            *where,
            EVENTS.c.kind == "click",
            RUNS.c.outcome == "converted",
            RUNS.c.group == "treatment",
            RUNS.c.goal_at.is_not(None),
        )
    )
    sent = (
        select(func.count())
        .select_from(OUTBOX.join(RUNS, RUNS.c.run_id == OUTBOX.c.run_id))
        .where(
            OUTBOX.c.journey == journey,
            OUTBOX.c.channel == "email",
            OUTBOX.c.status.in_(("sent", "unknown")),
            *([RUNS.c.entered_at >= since] if since is not None else []),
        )
    )
    with store.engine.connect() as conn:
        count_rows = list(conn.execute(counts))
        unsubscribe_rows = list(conn.execute(unsubscribes))
        click_rows = list(conn.execute(clicks))
        result.emails_sent = int(conn.execute(sent).scalar_one())
        link_unsubscribes = _link_unsubscribes(
            conn, journey, since, {str(u) for _, _, u in unsubscribe_rows if u}
        )

    def step(name: str | None) -> StepEngagement:
        return result.steps.setdefault(name or "unknown", StepEngagement())

    for name, kind, n in count_rows:
        step(name).counts[kind] = int(n)
        result.totals[kind] += int(n)
    unsubscribed: dict[str, set[str]] = defaultdict(set)
    for name, key, _ in unsubscribe_rows:
        unsubscribed[name or "unknown"].add(key)
    for name, key in link_unsubscribes:
        unsubscribed[name].add(key)
    for name, keys in unsubscribed.items():
        step(name).counts["unsubscribe"] = len(keys)
        result.totals["unsubscribe"] += len(keys)
    _attribute_clicks(result, click_rows, window, step)
    return result


def _attribute_clicks(
    result: JourneyEngagement,
    rows: list[Row[*tuple[Any, ...]]],
    window: timedelta,
    step: Callable[[str], StepEngagement],
) -> None:
    """A converted treatment entry counts for a step when some click on that step's email came
    before its goal, within `window` of it; for the journey, once, with a click on any email.
    `rows`: (step, run ID, click time, goal time, revenue), one per recorded click."""
    clicked: dict[tuple[str, str], float] = {}
    runs: dict[str, float] = {}
    for name, run_id, at, goal_at, revenue in rows:
        lead = _utc(goal_at) - _utc(at)
        if timedelta(0) <= lead <= window:
            clicked[(name or "unknown", run_id)] = float(revenue or 0.0)
            runs[run_id] = float(revenue or 0.0)
    for (name, _), revenue in clicked.items():
        engagement = step(name)
        engagement.click_conversions += 1
        engagement.click_revenue += revenue
    result.click_conversions = len(runs)
    result.click_revenue = round(sum(runs.values()), 2)


def _link_unsubscribes(
    conn: Connection, journey: str, since: datetime | None, already: set[str]
) -> list[tuple[str, str]]:
    """(step, message key) of each unsubscribe through our link from this journey: the
    journey's last email to the user before they unsubscribed (users the ESP already reported
    are left to that report)."""
    users = {
        str(user): _utc(at)
        for user, at in conn.execute(
            select(PROFILES.c.user_id, PROFILES.c.email_unsubscribed_at).where(
                PROFILES.c.email_unsubscribed_from == journey,
                PROFILES.c.email_unsubscribed_at.is_not(None),
            )
        )
        if str(user) not in already
    }
    if not users:
        return []
    query = (
        select(
            OUTBOX.c.user_id, OUTBOX.c.template, OUTBOX.c.run_id, OUTBOX.c.idempotency_key,
            OUTBOX.c.created_at,
        )
        .select_from(OUTBOX.join(RUNS, RUNS.c.run_id == OUTBOX.c.run_id))
        .where(
            OUTBOX.c.journey == journey,
            OUTBOX.c.channel == "email",
            OUTBOX.c.user_id.in_(sorted(users)),
            *([RUNS.c.entered_at >= since] if since is not None else []),
        )
    )  # fmt: skip
    last: dict[str, tuple[datetime, str, str]] = {}
    for user, template, run_id, key, created_at in conn.execute(query):
        sent_at = _utc(created_at)
        if sent_at <= users[user] and (user not in last or sent_at > last[user][0]):
            last[user] = (sent_at, template, f"{run_id}/{str(key).rsplit('/', 1)[-1]}")
    return [(template, key) for _, template, key in last.values()]


def _utc(when: datetime) -> datetime:
    """SQLite hands datetimes back naive; they were written in UTC."""
    return when if when.tzinfo else when.replace(tzinfo=UTC)
