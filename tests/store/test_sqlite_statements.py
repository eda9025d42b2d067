"""On SQLite the hot statements run on the driver's cursor: what they store must be what the
ORM stores and reads, and their errors must be SQLAlchemy's, as the callers catch them."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.exc import IntegrityError, OperationalError, StatementError
from sqlmodel import Session

from activities.store import EventSummary, Incoming, ProfileRow, Store

T0 = datetime(2026, 11, 24, 10, 0, 0, 123456, tzinfo=UTC)


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Store:
    store = Store(f"sqlite:///{tmp_path / 'journeys.db'}")
    store.migrate()
    return store


def raw_rows(store: Store, query: str) -> list[tuple[object, ...]]:
    path = store.url.split("///", 1)[1]
    with sqlite3.connect(path) as conn:
        return conn.execute(query).fetchall()


def test_a_received_call_is_stored_as_the_orm_stores_the_same_values(sqlite_store: Store):
    traits = {"email": "ada@example.test", "plan": {"name": "team", "seats": 3}}
    receipt = sqlite_store.receive(
        message_id="m-1",
        user_id="u-1",
        kind="track",
        at=T0,
        event="Product Added",
        properties={"sku": "a", "price": 12.5, "tags": ["x", None]},
        traits=traits,
    )
    assert receipt.new and receipt.count == 1 and receipt.profile is not None
    with Session(sqlite_store.engine) as session:  # the same values, written by the ORM
        session.add(ProfileRow(user_id="u-2", email="ada@example.test", traits=traits))
        summary = EventSummary(
            user_id="u-2",
            event="Product Added",
            count=1,
            first_seen=T0,
            last_seen=T0,
            last_properties={"sku": "a", "price": 12.5, "tags": ["x", None]},
            daily={T0.date().isoformat(): 1},  # the count per day templates read
            hours={str(T0.hour): 1},  # the count per hour send-time optimisation reads
        )
        session.add(summary)
        session.commit()

    profiles = raw_rows(sqlite_store, "SELECT user_id, email, traits FROM profiles ORDER BY 1")
    assert profiles[0][1:] == profiles[1][1:]
    summaries = raw_rows(sqlite_store, "SELECT * FROM event_summaries ORDER BY user_id")
    assert summaries[0][1:] == summaries[1][1:]  # dates as text in one format, JSON alike
    updated = raw_rows(sqlite_store, "SELECT updated_at FROM profiles ORDER BY 1")
    assert [len(str(u)) for (u,) in updated] == [26, 26]  # 'YYYY-MM-DD HH:MM:SS.ffffff'

    read = sqlite_store.event_summary("u-1", "Product Added")
    assert read is not None
    assert (read.first_seen, read.last_properties["tags"]) == (T0, ["x", None])
    assert sqlite_store.get_profile("u-1").traits == traits  # type: ignore[union-attr]


def test_a_duplicate_and_a_routed_mark_read_back_through_the_fast_path(sqlite_store: Store):
    sqlite_store.receive(message_id="m-1", user_id="u-1", kind="track", at=T0, event="Viewed")
    sqlite_store.mark_routed("m-1", [{"journey": "cart", "action": "triggered"}])
    later = Incoming("m-2", "u-1", "track", T0 + timedelta(days=1), "Viewed", {"p": 2})
    retried = Incoming("m-1", "u-1", "track", T0, "Viewed")
    again, second = sqlite_store.receive_many([retried, later])
    assert (again.new, again.routed, again.result) == (  # type: ignore[union-attr]
        False,
        True,
        [{"journey": "cart", "action": "triggered"}],
    )
    assert (second.new, second.count) == (True, 2)  # type: ignore[union-attr]
    summary = sqlite_store.event_summary("u-1", "Viewed")
    assert summary is not None
    assert (summary.first_seen, summary.last_seen) == (T0, T0 + timedelta(days=1))


def test_what_sqlalchemy_must_compute_or_refuse_still_goes_through_it(sqlite_store: Store):
    from activities.store import _hot, _run

    sql = _hot("sqlite")
    with sqlite_store.engine.begin() as conn:  # updated_at left out: its column default fills it
        _run(conn, sql.profile_insert, {"user_id": "u-1", "email": None, "traits": {}})
    assert sqlite_store.get_profile("u-1").updated_at is not None  # type: ignore[union-attr]
    with pytest.raises(StatementError, match="b_user_id"), sqlite_store.engine.begin() as conn:
        _run(conn, sql.profile_update, {"email": "x@example.test"})  # no WHERE value: refused


def test_database_errors_are_sqlalchemys_as_callers_catch_them(sqlite_store: Store):
    from activities.store import _hot, _run

    sql = _hot("sqlite")
    profile = {"user_id": "u-1", "email": None, "traits": {}, "updated_at": T0}
    with sqlite_store.engine.begin() as conn:
        _run(conn, sql.profile_insert, profile)
    with pytest.raises(IntegrityError), sqlite_store.engine.begin() as conn:
        _run(conn, sql.profile_insert, profile)
    raw_rows(sqlite_store, "SELECT 1")  # the file is still fine
    with sqlite_store.engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE event_receipts")
    with pytest.raises(OperationalError):  # a 503 for the API, not a crash
        sqlite_store.receive(message_id="m-1", user_id="u-1", kind="identify", at=T0)
