"""Send-time optimisation in the report: sends by the local hour they were timed for, and
conversion of entries whose timed sends used a learned hour against those that fell back to the
journey's default hour (a comparison, not a randomised test: users with a history differ)."""

from __future__ import annotations

from pydantic import BaseModel
from sqlalchemy import Table, case, func, or_, select

from activities.store import JourneyRun, OutboxMessage, Store
from starter import stats

RUNS: Table = JourneyRun.__table__  # type: ignore[attr-defined]
OUTBOX: Table = OutboxMessage.__table__  # type: ignore[attr-defined]
LEFT_OUT = ("suppressed", "failed")


class TimedConversions(BaseModel):
    entries: int = 0
    converted: int = 0
    rate: float | None = None


class SendTimes(BaseModel):
    by_hour: dict[int, int] = {}
    """Timed sends by the user's local hour they were aimed at."""
    learned: TimedConversions = TimedConversions()
    """Treatment entries whose timed sends used the user's own best hour."""
    default: TimedConversions = TimedConversions()
    """...and those that used the journey's default hour (too little history)."""


def send_times(store: Store, journey: str) -> SendTimes | None:
    """None when the journey has no timed sends."""
    o, r = OUTBOX.c, RUNS.c
    timed = (o.journey == journey) & o.timing.is_not(None) & (o.status == "sent")
    by_hour = select(o.send_hour, func.count()).where(timed).group_by(o.send_hour)
    learned = func.max(case((o.timing == "learned", 1), else_=0)).label("learned")
    per_run = select(o.run_id, learned).where(timed).group_by(o.run_id).subquery()
    counted = or_(r.outcome.is_(None), r.outcome.not_in(LEFT_OUT))
    groups = (
        select(
            per_run.c.learned,
            func.count(),
            func.sum(case((r.outcome == "converted", 1), else_=0)),
        )
        .select_from(per_run.join(RUNS, r.run_id == per_run.c.run_id))
        .where(counted, r.group == "treatment")
        .group_by(per_run.c.learned)
    )
    with store.engine.connect() as conn:
        hours = {int(h): int(n) for h, n in conn.execute(by_hour) if h is not None}
        if not hours:
            return None
        result = SendTimes(by_hour=dict(sorted(hours.items())))
        for was_learned, entries, converted in conn.execute(groups):
            conversions = TimedConversions(
                entries=int(entries),
                converted=int(converted or 0),
                rate=stats.rate(int(converted or 0), int(entries)),
            )
            if was_learned:
                result.learned = conversions
            else:
                result.default = conversions
    return result
