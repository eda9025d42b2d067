"""Send rates and priority: sends that wait their turn, and the frequency cap's tie-break.

A journey's `send_rate = Rate(1000, per=timedelta(hours=1))` spaces its sends evenly, one slot
every `per / count` (3.6 s here), across every worker: the journey's row in `send_rates` holds
the time its next slot starts, and a send takes the first free slot at or after its own time in
one transaction (SQLite: BEGIN IMMEDIATE; PostgreSQL: the row locked FOR UPDATE), so two
workers never take the same slot. A send whose slot is later is answered "deferred" with the
slot as `retry_at`: the journey sleeps until then on a durable timer, as for quiet hours, and
asks again; its reserved slot (a `send_waits` row, keyed by a hash of the send's idempotency
key) is then its turn. Nothing is dropped and nothing bursts: a daily segment run that releases
10,000 users at 09:00 sends its 1000-an-hour over ten hours. A slot that falls in the user's
quiet hours is given up (the send waits for the morning and then takes a new slot, so the
morning does not burst either).

Priority: every send that waits (for its slot, or for quiet hours) is pending until it is
settled (sent, or skipped). A marketing send of a journey with priority `p` to a user who has
had `n` marketing messages on the channel within the frequency window (cap `c`) goes only if
`n + h < c`, where `h` counts the user's pending marketing sends on the channel from journeys
of higher priority, due within the window from now (or up to GRACE overdue), whose runs are
still open. Otherwise it is skipped with `frequency_cap_lower_priority` (with `n >= c` it is
`frequency_cap`, as before): the higher-priority message keeps its place under the cap.
Equal priorities are first come, first served.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Table, func, select, update
from sqlalchemy.engine import Connection

from activities.store import JourneyRun, SendRateRow, SendWait, Store
from workflows.models import SendRequest

RATES: Table = SendRateRow.__table__  # type: ignore[attr-defined]
WAITS: Table = SendWait.__table__  # type: ignore[attr-defined]
RUNS: Table = JourneyRun.__table__  # type: ignore[attr-defined]

GRACE = timedelta(hours=1)
"""How long past its due time a waiting send still counts as pending: its timer fires on time,
but a busy worker may take a while to ask again."""

THROTTLED, QUIET_HOURS = "throttled", "quiet_hours"


def declared(journey: str) -> tuple[Any, int]:
    """The journey's `send_rate` and `priority` (None and 0 for a journey not loaded here)."""
    from workflows import registry
    from workflows.errors import JourneyError

    try:
        cls = registry.get(journey)
    except JourneyError:
        return None, 0
    return cls.send_rate, cls.priority


def outranked(priority: int) -> bool:
    """Whether a journey loaded here has a higher priority: only then can a pending send come
    before this one (and the query that counts them is worth running)."""
    from workflows import registry

    return any(cls.priority > priority for cls in registry.all_journeys())


class Throttle:
    """The send activity's waiting sends and send-rate slots, in the store's database."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def wait(self, request: SendRequest, until: datetime, reason: str, priority: int) -> None:
        """Record that the send waits until `until` (quiet hours): pending, and any slot it held
        given up."""
        at = _utc(request.at)
        with self._transaction() as conn:
            row = _row(conn, key_hash(request))
            values = {"reason": reason, "due_at": _utc(until), "settled_at": None}
            if row is None:
                conn.execute(WAITS.insert().values(**_new(request, priority, at), **values))
            else:
                conn.execute(_update(key_hash(request)).values(**values))

    def turn(self, request: SendRequest, rate: Any, priority: int) -> datetime | None:
        """None when the send may go now (its slot is now, or the slot it reserved has come);
        else the slot it must wait for, reserved."""
        at = _utc(request.at)
        key = key_hash(request)
        with self._transaction() as conn:
            row = _row(conn, key)
            if row is not None and row.reason == THROTTLED and row.settled_at is None:
                if _utc(row.due_at) <= at:
                    conn.execute(_update(key).values(settled_at=at))
                    return None
                return _utc(row.due_at)  # asked again before its slot (a retried attempt)
            slot = self._reserve(conn, request.journey, rate.interval, at)
            if slot <= at:
                if row is not None and row.settled_at is None:
                    conn.execute(_update(key).values(settled_at=at))
                return None
            values = {"reason": THROTTLED, "due_at": slot, "settled_at": None}
            if row is None:
                new = _new(request, priority, at) | values | {"throttled": 1}
                conn.execute(WAITS.insert().values(**new))
            else:
                conn.execute(_update(key).values(**values, throttled=WAITS.c.throttled + 1))
            return slot

    def settle(self, request: SendRequest) -> None:
        """The send went on or was skipped: no longer pending (a read, and a write only for a
        send that waited)."""
        key = key_hash(request)
        with self.store.engine.connect() as conn:
            row = _row(conn, key, lock=False)
        if row is None or row.settled_at is not None:
            return
        with self.store.engine.begin() as conn:
            conn.execute(
                _update(key).where(WAITS.c.settled_at.is_(None)).values(settled_at=_utc(request.at))
            )

    def higher_pending(self, request: SendRequest, priority: int, window: timedelta) -> int:
        """The user's pending marketing sends on the request's channel from journeys of higher
        priority, due from GRACE ago to `window` from now, in runs still open."""
        at = _utc(request.at)
        query = (
            select(func.count())
            .select_from(WAITS.join(RUNS, RUNS.c.run_id == WAITS.c.run_id))
            .where(
                RUNS.c.user_id == request.user_id,
                RUNS.c.outcome.is_(None),
                WAITS.c.settled_at.is_(None),
                WAITS.c.marketing.is_(True),
                WAITS.c.channel == request.channel,
                WAITS.c.priority > priority,
                WAITS.c.due_at >= at - GRACE,
                WAITS.c.due_at < at + window,
                WAITS.c.key_hash != key_hash(request),
            )
        )
        with self.store.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    # Internals --------------------------------------------------------------------------------

    @contextmanager
    def _transaction(self) -> Iterator[Connection]:
        """A write transaction that holds SQLite's write lock from its first statement (so the
        read of a slot and its update cannot interleave with another worker's); PostgreSQL
        locks the rows read FOR UPDATE instead."""
        with self.store.engine.begin() as conn:
            if conn.dialect.name == "sqlite":
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            yield conn

    @staticmethod
    def _reserve(conn: Connection, journey: str, interval: timedelta, at: datetime) -> datetime:
        """Take the journey's first free slot at or after `at`; the next one starts a slot later."""
        insert: Any
        if conn.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        conn.execute(insert(RATES).values(journey=journey, next_at=at).on_conflict_do_nothing())
        current = conn.execute(
            select(RATES.c.next_at).where(RATES.c.journey == journey).with_for_update()
        ).scalar_one()
        slot = max(at, _utc(current))
        conn.execute(
            update(RATES).where(RATES.c.journey == journey).values(next_at=slot + interval)
        )
        return slot


def key_hash(request: SendRequest) -> str:
    """The send's key in `send_waits`: its idempotency key holds the user's ID, so a hash."""
    return hashlib.sha256(request.idempotency_key.encode()).hexdigest()


def _row(conn: Connection, key: str, *, lock: bool = True) -> Any:
    query = select(WAITS.c.reason, WAITS.c.due_at, WAITS.c.settled_at).where(
        WAITS.c.key_hash == key
    )
    return conn.execute(query.with_for_update() if lock else query).first()


def _update(key: str) -> Any:
    return update(WAITS).where(WAITS.c.key_hash == key)


def _new(request: SendRequest, priority: int, at: datetime) -> dict[str, Any]:
    return {
        "key_hash": key_hash(request),
        "run_id": request.run_id,
        "journey": request.journey,
        "template": request.template,
        "channel": request.channel,
        "marketing": request.marketing,
        "priority": priority,
        "first_at": at,
        "throttled": 0,
    }


def _utc(when: datetime) -> datetime:
    return when.astimezone(UTC) if when.tzinfo is not None else when.replace(tzinfo=UTC)
