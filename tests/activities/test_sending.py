"""Exactly once in effect: a retried or concurrent send activity never delivers twice."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from activities.sending import SendingActivities
from workflows.models import SendRequest


def request(user: str, key: str = "cart:u/run-1/2") -> SendRequest:
    return SendRequest(
        idempotency_key=key,
        run_id="run-1",
        seq=2,
        journey="cart_recovery",
        user_id=user,
        template="reminder",
        context={"items": ["chair"]},
        at=datetime(2026, 11, 24, 12, 0, tzinfo=UTC),
    )


def test_a_retried_send_reports_the_first_delivery_and_adds_nothing(store):
    store.upsert_profile("u", email="u@example.test")
    sending = SendingActivities(store)
    first = sending.send_message(request("u"))
    again = sending.send_message(request("u"))
    assert first.status == "sent"
    assert (again.status, again.message_id) == ("duplicate", first.message_id)
    assert len(store.outbox("u")) == 1
    assert [(s.kind, s.status) for s in store.steps("run-1")] == [("send", "sent")]


def test_concurrent_attempts_of_one_send_deliver_once(store):
    store.upsert_profile("u", email="u@example.test")
    sending = SendingActivities(store)
    results = []
    threads = [
        threading.Thread(target=lambda: results.append(sending.send_message(request("u"))))
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(r.status for r in results) == ["duplicate"] * 7 + ["sent"]
    assert len(store.outbox("u")) == 1


def test_a_user_without_an_address_is_skipped_and_the_skip_recorded(store):
    result = SendingActivities(store).send_message(request("nobody"))
    assert (result.status, result.reason) == ("skipped", "no_address")
    assert store.outbox("nobody") == []
    [step] = store.steps("run-1")
    assert (step.status, step.detail) == ("skipped", "no_address")
