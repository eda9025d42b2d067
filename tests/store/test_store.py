"""The store's queries, each on SQLite and on PostgreSQL: the same answers from both."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from activities.store import (
    EventReceipt,
    JourneyRun,
    JourneyStepRow,
    OutboxMessage,
    Store,
)

pytestmark = pytest.mark.both_databases

T0 = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
BERLIN = timezone(timedelta(hours=1))
HOUR = timedelta(hours=1)


def together(count: int, work: Callable[[int], Any]) -> list[Any]:
    """Run `work(0..count-1)` on `count` threads released at the same instant."""
    start = threading.Barrier(count)

    def one(index: int) -> Any:
        start.wait()
        return work(index)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


def run(journey: str = "cart", user: str = "u-1", at: datetime = T0, **fields: Any) -> JourneyRun:
    return JourneyRun(
        run_id=fields.pop("run_id", uuid.uuid4().hex),
        workflow_id=f"{journey}:{user}",
        journey=journey,
        user_id=user,
        group=fields.pop("group", "treatment"),
        entered_at=at,
        **fields,
    )


def message(run_id: str, at: datetime, *, user: str = "u-1", **fields: Any) -> OutboxMessage:
    return OutboxMessage(
        idempotency_key=fields.pop("idempotency_key", uuid.uuid4().hex),
        run_id=run_id,
        journey=fields.pop("journey", "cart"),
        user_id=user,
        template="reminder",
        recipient=f"{user}@example.test",
        journey_time=at,
        **fields,
    )


def receive(store: Store, message_id: str, event: str | None = "Product Added", **fields: Any):
    fields.setdefault("at", T0)
    return store.receive(
        message_id=message_id, user_id=fields.pop("user_id", "u-1"), kind="track", event=event,
        **fields,
    )  # fmt: skip


# Profiles --------------------------------------------------------------------------------------


def test_a_profile_is_created_then_merged_and_keeps_its_address(store):
    store.upsert_profile("u-1", email="ada@example.test", traits={"plan": "free", "name": "Ada"})
    store.upsert_profile("u-1", traits={"plan": "pro"})
    profile = store.get_profile("u-1")
    assert profile.email == "ada@example.test"
    assert profile.traits == {"plan": "pro", "name": "Ada"}
    store.upsert_profile("u-1", traits={"email": "new@example.test"})
    assert store.get_profile("u-1").email == "new@example.test"


def test_an_identify_links_other_systems_ids_to_the_user(store):
    store.upsert_profile("u-1", traits={"stripe_customer_id": "cus_1", "shopify_customer_id": 42})
    assert store.resolve_alias("stripe_customer_id", "cus_1") == "u-1"
    assert store.resolve_alias("shopify_customer_id", "42") == "u-1"
    store.upsert_profile("u-2", traits={"stripe_customer_id": "cus_1"})  # the customer moved
    assert store.resolve_alias("stripe_customer_id", "cus_1") == "u-2"
    assert store.resolve_alias("stripe_customer_id", "cus_unknown") is None


def test_racing_first_writes_of_a_new_profile_both_land(store):
    """Two replicas see the same new user at once: one inserts, the other merges into it."""
    for attempt in range(5):
        user = f"u-race-{attempt}"
        together(2, lambda i, user=user: store.upsert_profile(user, traits={f"t{i}": i}))
        assert store.get_profile(user).traits == {"t0": 0, "t1": 1}


def test_concurrent_merges_into_one_profile_lose_none_of_its_traits(store):
    store.upsert_profile("u-1", email="ada@example.test")
    together(8, lambda i: store.upsert_profile("u-1", traits={f"t{i}": i}))
    profile = store.get_profile("u-1")
    assert profile.traits == {f"t{i}": i for i in range(8)}
    assert profile.email == "ada@example.test"


def test_concurrent_calls_for_one_user_lose_none_of_its_traits(store):
    """Identify and track calls for one user arriving together on several replicas."""
    store.upsert_profile("u-1", email="ada@example.test")
    together(
        8,
        lambda i: receive(store, f"m-{i}", traits={f"t{i}": i}, properties={"i": i}),
    )
    profile = store.get_profile("u-1")
    assert profile.traits == {f"t{i}": i for i in range(8)}
    assert profile.email == "ada@example.test"


def test_an_overlong_address_or_customer_id_is_kept_as_a_trait_not_refused(store):
    """Anything a sender puts in traits is taken: a value too long for its column stays in the
    traits, rather than failing the call (which a sender would retry for ever)."""
    address, customer = "a" * 400 + "@example.test", "cus_" + "9" * 300
    receipt = receive(store, "m-1", traits={"email": address, "stripe_customer_id": customer})
    assert receipt.new
    profile = store.get_profile("u-1")
    assert profile.traits["email"] == address and profile.email is None
    assert store.resolve_alias("stripe_customer_id", customer) is None


# Receipts and event summaries ------------------------------------------------------------------


def test_the_same_message_twice_counts_once_and_answers_with_the_first_result(store):
    first = receive(store, "m-1", traits={"plan": "pro"})
    assert (first.new, first.routed, first.count) == (True, False, 1)
    assert first.profile is not None and first.profile.traits == {"plan": "pro"}
    again = receive(store, "m-1")
    assert (again.new, again.routed) == (False, False)  # seen, but its routing never finished
    store.mark_routed("m-1", [{"journey": "cart", "action": "triggered"}])
    routed = receive(store, "m-1")
    assert (routed.new, routed.routed) == (False, True)
    assert routed.result == [{"journey": "cart", "action": "triggered"}]
    assert store.event_summary("u-1", "Product Added").count == 1


def test_each_event_returns_how_many_of_its_name_the_user_has_sent(store):
    counts = [receive(store, f"m-{i}").count for i in range(3)]
    assert counts == [1, 2, 3]
    assert receive(store, "m-other", "Order Completed").count == 1
    assert receive(store, "m-identify", None, traits={"a": 1}).count is None


def test_concurrent_events_of_one_name_get_distinct_counts_and_lose_none(store):
    counts = together(8, lambda i: receive(store, f"m-{i}").count)
    assert sorted(counts) == list(range(1, 9))
    assert store.event_summary("u-1", "Product Added").count == 8


def test_out_of_order_events_keep_the_earliest_first_and_the_latest_last(store):
    receive(store, "m-mid", at=T0, properties={"sku": "mid"})
    receive(store, "m-late", at=T0 + timedelta(hours=2), properties={"sku": "late"})
    receive(store, "m-early", at=(T0 - HOUR).astimezone(BERLIN), properties={})
    summary = store.event_summary("u-1", "Product Added")
    assert (summary.first_seen, summary.last_seen) == (T0 - HOUR, T0 + 2 * HOUR)
    assert summary.last_properties == {"sku": "late"}


def test_pruned_receipts_are_forgotten_and_recent_ones_kept(store):
    receive(store, "m-old")
    receive(store, "m-new")
    with store.session() as session:  # received eight days ago
        session.get(EventReceipt, "m-old").received_at = datetime.now(UTC) - timedelta(days=8)
        session.commit()
    assert store.prune_receipts(datetime.now(UTC) - timedelta(days=7)) == 1
    assert receive(store, "m-old").new  # outside the dedupe window: a new call
    assert not receive(store, "m-new").new


# Journey runs and steps ------------------------------------------------------------------------


def test_insert_once_inserts_a_run_a_step_and_a_message_once(store):
    first = run(run_id="r-1")
    assert store.insert_once(first)
    assert not store.insert_once(run(run_id="r-1", journey="other"))
    assert store.get_run("r-1").journey == "cart"

    def step(status: str) -> JourneyStepRow:
        return JourneyStepRow(run_id="r-1", seq=1, kind="send", name="reminder", status=status,
                              at=T0)  # fmt: skip

    assert store.insert_once(step("sent"))
    assert not store.insert_once(step("skipped"))
    assert [s.status for s in store.steps("r-1")] == ["sent"]

    assert store.insert_once(message("r-1", T0, idempotency_key="r-1:1"))
    assert not store.insert_once(message("r-1", T0, idempotency_key="r-1:1", subject="again"))
    assert [m.subject for m in store.outbox("u-1")] == [None]


def test_runs_come_in_entry_order_filtered_by_journey_and_user(store):
    for run_id, journey, user, hours in [
        ("r-3", "cart", "u-1", 3), ("r-1", "cart", "u-1", 1), ("r-2", "win_back", "u-1", 2),
        ("r-4", "cart", "u-2", 0),
    ]:  # fmt: skip
        store.insert_once(run(journey, user, T0 + timedelta(hours=hours), run_id=run_id))
    assert [r.run_id for r in store.runs()] == ["r-4", "r-1", "r-2", "r-3"]
    assert [r.run_id for r in store.runs(journey="cart", user_id="u-1")] == ["r-1", "r-3"]
    assert [r.run_id for r in store.runs(user_id="u-2")] == ["r-4"]
    assert store.get_run("r-1").entered_at == T0 + timedelta(hours=1)


def test_steps_come_in_sequence_order(store):
    for seq in (3, 1, 2):
        store.insert_once(
            JourneyStepRow(run_id="r-1", seq=seq, kind="wait", name=f"w{seq}", status="done",
                           at=T0 + timedelta(minutes=seq))
        )  # fmt: skip
    assert [s.name for s in store.steps("r-1")] == ["w1", "w2", "w3"]


def test_last_message_at_counts_sends_and_holdouts_of_other_runs_only(store):
    now_run, sent_run, held_run = run(run_id="r-now"), run(run_id="r-sent"), run(run_id="r-held")
    for row in (now_run, sent_run, held_run):
        store.insert_once(row)
    assert store.last_message_at("cart", "u-1", "r-now") is None

    store.insert_once(message("r-sent", T0))
    store.insert_once(message("r-sent", T0 + 3 * HOUR, status="failed"))  # never went
    store.insert_once(message("r-now", T0 + 5 * HOUR))  # this run's own send
    store.insert_once(message("r-sent", T0 + 9 * HOUR, journey="win_back"))  # another journey
    assert store.last_message_at("cart", "u-1", "r-now") == T0

    store.insert_once(
        JourneyStepRow(run_id="r-held", seq=1, kind="send", name="reminder", status="held_out",
                       at=(T0 + 2 * HOUR).astimezone(BERLIN))
    )  # fmt: skip
    latest = store.last_message_at("cart", "u-1", "r-now")
    assert latest == T0 + 2 * HOUR and latest.utcoffset() == timedelta(0)
    assert store.last_message_at("cart", "u-2", "r-now") is None


# Delivery ------------------------------------------------------------------------------------


def test_marketing_sent_since_counts_what_went_or_may_have_gone_on_that_channel(store):
    for status in ("sent", "sending", "unknown", "failed"):
        store.insert_once(message("r-1", T0, status=status))
    store.insert_once(message("r-1", T0, marketing=False))  # transactional: never capped
    store.insert_once(message("r-1", T0, channel="in_app"))
    store.insert_once(message("r-1", T0 - timedelta(days=2)))
    store.insert_once(message("r-1", T0, user="u-2"))
    assert store.marketing_sent_since("u-1", T0 - timedelta(days=1)) == 3
    assert store.marketing_sent_since("u-1", T0 - timedelta(days=3)) == 4
    assert store.marketing_sent_since("u-1", T0 - timedelta(days=1), channel="in_app") == 1


def test_in_app_messages_are_listed_newest_first_and_read_once(store):
    for n in range(2):
        store.insert_once(message("r-1", T0, channel="in_app", subject=f"n{n}"))
    store.insert_once(message("r-1", T0, subject="email"))
    inbox = store.messages("u-1", "in_app")
    assert [m.subject for m in inbox] == ["n1", "n0"]
    assert not store.mark_read("u-2", inbox[0].id)  # not theirs
    assert store.mark_read("u-1", inbox[0].id)
    first_read = store.messages("u-1", "in_app")[0].read_at
    assert first_read is not None
    assert store.mark_read("u-1", inbox[0].id)  # again: still read, at the first time
    assert store.messages("u-1", "in_app")[0].read_at == first_read
    email = store.messages("u-1", "email")[0]
    assert not store.mark_read("u-1", email.id)  # an email is not an in-app message


def test_pausing_a_journey_stops_it_and_every_change_is_logged(store):
    from sqlmodel import select

    from activities.store import JourneyControlLog

    assert not store.is_paused("cart")
    store.set_paused("cart", True, "bad copy")
    store.set_paused("win_back", True)
    assert store.is_paused("cart") and store.paused_journeys() == ["cart", "win_back"]
    store.set_paused("cart", False, "fixed")
    assert not store.is_paused("cart") and store.paused_journeys() == ["win_back"]
    with store.session() as session:
        log = session.exec(
            select(JourneyControlLog)
            .where(JourneyControlLog.journey == "cart")
            .order_by(JourneyControlLog.id)  # type: ignore[arg-type]
        ).all()
    assert [(entry.action, entry.reason) for entry in log] == [
        ("pause", "bad copy"),
        ("resume", "fixed"),
    ]


def test_times_written_in_any_zone_read_back_as_the_same_instant_in_utc(store):
    store.insert_once(run(run_id="r-1", at=T0.astimezone(BERLIN)))
    entered = store.get_run("r-1").entered_at
    assert entered == T0 and entered.utcoffset() == timedelta(0)
