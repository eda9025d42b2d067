"""Segment entry, the side effects: select a page of matching users with SQL, start their journeys.

The selection reads only the per-user, per-event summaries the webhook keeps (`event_summaries`,
primary key (user_id, event)): one ordered pass over that key, grouped per user, with the
segment's conditions as HAVING clauses, so a page costs one indexed range scan on SQLite and
PostgreSQL alike. Users who entered the journey within its re-entry window are left out by an
indexed NOT EXISTS on `journey_runs`, and Temporal refuses a second start of a journey that is
still running (or cooling down), so a page retried after a crash starts nobody twice.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, exists, func, select, true
from sqlalchemy.sql.elements import ColumnElement
from temporalio import activity
from temporalio.client import Client
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from activities.store import EventSummary, JourneyRun, Store
from workflows import registry
from workflows.identity import start_attributes, workflow_id
from workflows.models import Event, JourneyInput, SegmentPage, SegmentPageRequest
from workflows.segments import SEGMENT_ENTERED, Activity, Condition, Did, Never, Segment

STARTS_IN_FLIGHT = 32
"""Concurrent start calls per page: enough to keep Temporal busy, few enough to be polite."""


def select_users(
    store: Store,
    segment: Segment,
    journey: str,
    reentry: timedelta,
    as_of: datetime,
    after: str | None,
    limit: int,
) -> list[str]:
    """The next `limit` matching user IDs after `after`, in user ID order."""
    summaries = EventSummary.__table__  # type: ignore[attr-defined]
    runs = JourneyRun.__table__  # type: ignore[attr-defined]
    dialect = store.engine.dialect.name
    having = [_condition(c, summaries, as_of, dialect) for c in segment.conditions]
    recently_entered = exists().where(
        runs.c.journey == journey,
        runs.c.user_id == summaries.c.user_id,
        runs.c.entered_at >= as_of - reentry,
    )
    query = (
        select(summaries.c.user_id)
        .where(summaries.c.user_id > after if after is not None else true())
        .group_by(summaries.c.user_id)
        .having(and_(*having, ~recently_entered))
        .order_by(summaries.c.user_id)
        .limit(limit)
    )
    with store.engine.connect() as conn:
        return [row[0] for row in conn.execute(query)]


def _condition(condition: Condition, s: Any, as_of: datetime, dialect: str) -> ColumnElement[bool]:
    if isinstance(condition, Did):
        hits = and_(s.c.event.in_(condition.events), s.c.count >= condition.times)
        return func.sum(case((hits, 1), else_=0)) >= condition.at_least
    if isinstance(condition, Never):
        return func.sum(case((s.c.event.in_(condition.events), 1), else_=0)) == 0
    assert isinstance(condition, Activity)
    if condition.events:
        counted = s.c.event.in_(condition.events)
        first, last = (
            func.min(case((counted, s.c.first_seen))),
            func.max(case((counted, s.c.last_seen))),
        )
    else:
        first, last = func.min(s.c.first_seen), func.max(s.c.last_seen)
    since = as_of - condition.duration
    if condition.kind == "within":
        return last >= since
    if condition.kind == "inactive":
        return last < since
    if condition.kind == "since":
        return first <= since
    seconds = condition.duration.total_seconds()
    if dialect == "postgresql":
        return func.extract("epoch", last - first) >= seconds
    return (func.julianday(last) - func.julianday(first)) * 86400.0 >= seconds


class SegmentActivities:
    """Pages through a segment and starts the journeys of the users in each page."""

    def __init__(self, store: Store, client: Client, task_queue: str) -> None:
        self.store = store
        self.client = client
        self.task_queue = task_queue

    @activity.defn(name="enter_segment_page")
    async def enter_segment_page(self, request: SegmentPageRequest) -> SegmentPage:
        """Select one page of the segment and start each user's journey (once)."""
        journey = registry.get(request.journey)
        segment = journey.segment
        if segment is None or journey.reentry is None:
            raise ValueError(f"journey {request.journey!r} has no segment")
        users = await asyncio.to_thread(
            select_users,
            self.store,
            segment,
            journey.name,
            journey.reentry,
            request.as_of,
            request.after,
            request.limit or segment.page_size,
        )
        gate = asyncio.Semaphore(STARTS_IN_FLIGHT)

        async def start(user_id: str) -> bool:
            async with gate:
                return await self._start(journey.name, user_id, request.as_of)

        started = await asyncio.gather(*(start(u) for u in users))
        limit = request.limit or segment.page_size
        return SegmentPage(
            selected=len(users),
            started=sum(started),
            already_in=len(users) - sum(started),
            next_after=users[-1] if len(users) == limit else None,
        )

    async def _start(self, journey: str, user_id: str, as_of: datetime) -> bool:
        """Start the user's journey; False if it is already running (or cooling down)."""
        entry = Event(
            name=SEGMENT_ENTERED,
            user_id=user_id,
            message_id=f"segment:{journey}:{as_of.isoformat()}:{user_id}",
            timestamp=as_of,
            properties={"segment": journey, "as_of": as_of.isoformat()},
        )
        try:
            await self.client.start_workflow(
                "Journey",
                JourneyInput(journey=journey, user_id=user_id, event=entry),
                id=workflow_id(journey, user_id),
                task_queue=self.task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
                search_attributes=start_attributes(journey, user_id),
            )
        except WorkflowAlreadyStartedError:
            return False
        return True
