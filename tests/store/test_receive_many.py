"""Calls recorded together (the API's group commit on SQLite) answer as they would one by one."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from activities import store as store_module
from activities.store import Incoming, Receipt, Store, WouldWait

T0 = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


def track(message_id: str, user: str = "u-1", **fields: Any) -> Incoming:
    return Incoming(message_id, user, "track", fields.pop("at", T0), "Product Added", **fields)


def test_calls_recorded_together_answer_as_they_would_one_by_one(store: Store):
    store.receive(message_id="m-0", user_id="u-1", kind="track", at=T0, event="Product Added")
    store.mark_routed("m-0", [{"journey": "cart", "action": "triggered"}])
    receipts = store.receive_many(
        [
            track("m-0"),  # taken and routed before
            track("m-1", traits={"plan": "free"}, properties={"sku": "a"}),
            track("m-2", traits={"name": "Ada"}, at=T0 + timedelta(minutes=1)),
            track("m-1"),  # the same call twice in one batch
            Incoming(
                "m-3", "u-2", "identify", T0, traits={"email": "bo@example.test"}, routed=True
            ),
        ]
    )
    assert all(isinstance(r, Receipt) for r in receipts)
    old, first, second, again, identify = receipts
    assert (old.new, old.routed, old.result) == (
        False,
        True,
        [{"journey": "cart", "action": "triggered"}],
    )
    assert (first.new, first.count, second.new, second.count) == (True, 2, True, 3)
    assert second.profile.traits == {"plan": "free", "name": "Ada"}  # sees the call before it
    assert (again.new, again.routed) == (False, False)
    assert identify.new and identify.profile.email == "bo@example.test"
    summary = store.event_summary("u-1", "Product Added")
    assert (summary.count, summary.last_seen) == (3, T0 + timedelta(minutes=1))
    assert store.get_profile("u-2").email == "bo@example.test"
    assert not store.receive(message_id="m-3", user_id="u-2", kind="identify", at=T0).new


def test_a_call_that_cannot_be_stored_fails_alone_and_the_rest_are_recorded(store: Store):
    receipts = store.receive_many(
        [
            track("m-1"),
            track("m-bad", properties={"not json": {1, 2}}),  # a set: no JSON for it
            track("m-2"),
        ]
    )
    assert isinstance(receipts[1], Exception)
    assert [r.count for r in (receipts[0], receipts[2])] == [1, 2]
    assert store.event_summary("u-1", "Product Added").count == 2  # the bad call left no trace
    retried = store.receive(message_id="m-bad", user_id="u-1", kind="track", at=T0, event="x")
    assert retried.new


@contextmanager
def write_locked(store: Store, release_after: float) -> Iterator[None]:
    """Another connection (a worker, say) holds the file's write lock, for `release_after` s."""
    other = sqlite3.connect(
        store.engine.url.database, isolation_level=None, check_same_thread=False
    )
    other.execute("BEGIN IMMEDIATE")
    timer = threading.Timer(release_after, other.commit)
    timer.start()
    try:
        yield
    finally:
        timer.join()
        other.close()


def busy_timeout(store: Store) -> int:
    with store.engine.connect() as conn:
        return int(conn.exec_driver_sql("PRAGMA busy_timeout").scalar_one())


@pytest.mark.parametrize("write", ["receive", "mark"])
def test_a_write_behind_another_writer_waits_for_the_lock_and_then_lands(store: Store, write):
    store.receive_many([track("m-1")])
    with write_locked(store, release_after=0.3):
        if write == "receive":
            [receipt] = store.receive_many([track("m-2")])
            assert isinstance(receipt, Receipt) and receipt.count == 2
        else:
            store.mark_routed_many([("m-1", [{"journey": "cart", "action": "triggered"}])])
    [again] = store.receive_many([track("m-1")])
    assert isinstance(again, Receipt) and (again.new, again.routed) == (False, write == "mark")
    # The connection polled for the lock, then got SQLite's own busy timeout back.
    assert busy_timeout(store) == store_module.SQLITE_BUSY_TIMEOUT * 1000


def test_a_write_lock_held_past_the_busy_timeout_is_the_database_error(
    store: Store, monkeypatch: pytest.MonkeyPatch
):
    # Our deadline, not SQLite's busy handler (30 s), decides: the lock frees only after it.
    monkeypatch.setattr(store_module, "SQLITE_BUSY_TIMEOUT", 0.2)
    with write_locked(store, release_after=1.0), pytest.raises(OperationalError, match="locked"):
        store.receive_many([track("m-1")])
    assert store.event_summary("u-1", "Product Added") is None
    assert busy_timeout(store) == 200


def test_connections_read_the_file_mapped_and_still_see_each_others_writes(tmp_path):
    # Two stores on one file: the API and the worker, each with its own warm connection.
    url = f"sqlite:///{tmp_path / 'journeys.db'}"
    api, worker = Store(url), Store(url)
    try:
        api.migrate()
        api.receive_many([track("m-1")])
        worker.receive_many([track("m-2")])  # written while the API's connection has its map
        [again] = api.receive_many([track("m-2")])
        assert isinstance(again, Receipt) and not again.new
        assert api.event_summary("u-1", "Product Added").count == 2
        with api.engine.connect() as conn:
            mapped = conn.exec_driver_sql("PRAGMA mmap_size").scalar_one()
        assert mapped == store_module.SQLITE_MMAP_SIZE
    finally:
        api.dispose()
        worker.dispose()


@pytest.mark.parametrize("write", ["receive", "mark"])
def test_a_write_that_may_not_wait_is_refused_whole_while_another_writer_holds_the_lock(
    store: Store, write
):
    # The API tries its writes on the event loop's thread (wait=False) and hands them to its
    # writer thread only when refused: a refused write must have done nothing.
    store.receive_many([track("m-1")])
    mark = [("m-1", [{"journey": "cart", "action": "triggered"}])]
    with write_locked(store, release_after=0.3), pytest.raises(WouldWait):
        if write == "receive":
            store.receive_many([track("m-2"), track("m-3")], wait=False)
        else:
            store.mark_routed_many(mark, wait=False)
    [again] = store.receive_many([track("m-1")])
    assert isinstance(again, Receipt) and not again.routed
    assert store.event_summary("u-1", "Product Added").count == 1  # m-2 and m-3: no trace
    # The lock free, the same write goes through at once, on the same terms.
    store.mark_routed_many(mark, wait=False)
    [_, m3] = store.receive_many([track("m-2"), track("m-3")], wait=False)
    assert isinstance(m3, Receipt) and (m3.new, m3.count) == (True, 3)
    [again] = store.receive_many([track("m-1")], wait=False)
    assert isinstance(again, Receipt) and again.routed
    assert busy_timeout(store) == store_module.SQLITE_BUSY_TIMEOUT * 1000


def test_calls_that_must_be_taken_one_by_one_are_left_to_a_write_that_may_wait(store: Store):
    bad = track("m-bad", properties={"not json": {1, 2}})
    with pytest.raises(WouldWait):
        store.receive_many([track("m-1"), bad], wait=False)
    assert store.event_summary("u-1", "Product Added") is None  # nothing of the group kept
    first, failed = store.receive_many([track("m-1"), bad])  # the writer thread's turn
    assert isinstance(first, Receipt) and isinstance(failed, Exception)
