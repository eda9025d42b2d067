"""Stripe subscription events become Subscription Started and Subscription Cancelled."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from starter.sources import InvalidPayload, SourceCall, UnsupportedTopic, stripe_calls
from tests.sources.payloads import load

PRICE = "price_1PwA9cLkdIwHu7ixPro0Mnth"
SUBSCRIPTION = "sub_1PxR4qLkdIwHu7ixv9bYw2Ze"
CUSTOMER = "cus_QpBFJ8f2rXo1Lm"


def test_a_deleted_subscription_is_a_cancellation_with_its_reason() -> None:
    assert stripe_calls(load("stripe_subscription_deleted")) == [
        SourceCall(
            type="track",
            event="Subscription Cancelled",
            user_id="user_8f14e45f",
            message_id="evt_1QHmZ2LkdIwHu7ix8cW3kT1s",
            timestamp=datetime(2026, 11, 24, 15, 0, tzinfo=UTC),
            properties={
                "stripe_customer_id": CUSTOMER,
                "subscription_id": SUBSCRIPTION,
                "plan": PRICE,
                "cancellation_reason": "cancellation_requested",
            },
        )
    ]


def test_a_created_subscription_without_metadata_leaves_the_user_to_the_api() -> None:
    [call] = stripe_calls(load("stripe_subscription_created"))
    assert call == SourceCall(
        type="track",
        event="Subscription Started",
        user_id=None,
        message_id="evt_1PxR4rLkdIwHu7ixH2cN0qWm",
        timestamp=datetime(2026, 9, 26, 15, 13, 21, tzinfo=UTC),
        properties={"stripe_customer_id": CUSTOMER, "subscription_id": SUBSCRIPTION, "plan": PRICE},
    )
    assert call.timestamp.tzinfo is UTC and call.anonymous_id is None


def test_a_cancellation_without_a_reason_or_metadata_still_names_the_customer() -> None:
    event = load("stripe_subscription_deleted")
    subscription = event["data"]["object"]
    subscription["cancellation_details"] = {"comment": None, "feedback": None, "reason": None}
    subscription["metadata"] = {}
    [call] = stripe_calls(event)
    assert call.user_id is None
    assert call.properties == {
        "stripe_customer_id": CUSTOMER,
        "subscription_id": SUBSCRIPTION,
        "plan": PRICE,
    }


def test_the_plan_falls_back_to_the_legacy_plan_field() -> None:
    event = load("stripe_subscription_deleted")
    event["data"]["object"]["items"] = {"object": "list", "data": []}
    event["data"]["object"]["plan"] = {"id": "plan_legacy_gold"}
    assert stripe_calls(event)[0].properties["plan"] == "plan_legacy_gold"


@pytest.mark.parametrize(
    "kind", ["invoice.paid", "customer.subscription.updated", "checkout.session.completed", None]
)
def test_other_event_types_are_unsupported(kind: str | None) -> None:
    with pytest.raises(UnsupportedTopic):
        stripe_calls({**load("stripe_subscription_deleted"), "type": kind})


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"id": None}, id="no-event-id"),
        pytest.param({"created": None}, id="no-created"),
        pytest.param({"data": {"object": {"id": SUBSCRIPTION}}}, id="no-customer"),
        pytest.param({"data": []}, id="data-not-an-object"),
    ],
)
def test_malformed_events_are_invalid_payloads(change: dict[str, object]) -> None:
    with pytest.raises(InvalidPayload):
        stripe_calls({**load("stripe_subscription_deleted"), **change})
