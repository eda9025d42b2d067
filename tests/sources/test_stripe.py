"""Stripe events as the subscription journeys' events: Trial Started, Plan Upgraded, Subscription
Started (a paid trial, a first paid invoice, with revenue in major units) and Subscription
Cancelled; everything else is ignored, never an error Stripe would retry."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given

from starter.calls import parse_json
from starter.sources import InvalidPayload, SourceCall, UnsupportedTopic, stripe_calls
from starter.sources.stripe import major_units
from tests.security.test_call_properties import PROPERTY, mapped, spoiled
from tests.sources.payloads import load

PRO = "price_1PwA9cLkdIwHu7ixPro0Mnth"
TEAM = "price_1PwAC4LkdIwHu7ixTeam0Mth"
SUBSCRIPTION = "sub_1PxR4qLkdIwHu7ixv9bYw2Ze"
CUSTOMER = "cus_QpBFJ8f2rXo1Lm"
FIXTURES = [
    "stripe_subscription_created",
    "stripe_subscription_trial_ended",
    "stripe_subscription_upgraded",
    "stripe_subscription_deleted",
    "stripe_invoice_paid",
    "stripe_invoice_paid_jpy",
]


def price(item: dict[str, Any]) -> dict[str, Any]:
    """A subscription item's price (Stripe sends the legacy `plan` beside it)."""
    return item["price"]


def test_a_trialing_subscription_is_trial_started_with_its_end_plan_and_price() -> None:
    [call] = stripe_calls(load("stripe_subscription_created"))
    assert call == SourceCall(
        type="track",
        event="Trial Started",
        user_id=None,  # no metadata.user_id: the API resolves stripe_customer_id
        message_id="evt_1PxR4rLkdIwHu7ixH2cN0qWm",
        timestamp=datetime(2026, 9, 26, 15, 13, 21, tzinfo=UTC),
        properties={
            "stripe_customer_id": CUSTOMER,
            "subscription_id": SUBSCRIPTION,
            "plan": PRO,
            "price": 49.0,
            "currency": "USD",
            "interval": "month",
            "trial_start": 1790435600,
            "trial_end": 1793027600,  # Unix seconds, as trial_expiring reads it
        },
    )
    assert call.timestamp.tzinfo is UTC and call.anonymous_id is None


@pytest.mark.parametrize("status", ["active", "incomplete", None])
def test_a_subscription_created_without_a_trial_is_ignored_for_its_first_invoice(
    status: str | None,
) -> None:
    event = load("stripe_subscription_created")
    event["data"]["object"]["status"] = status
    with pytest.raises(UnsupportedTopic, match=r"invoice\.paid"):
        stripe_calls(event)


def test_a_move_to_a_higher_price_is_plan_upgraded_with_the_new_price_as_revenue() -> None:
    assert stripe_calls(load("stripe_subscription_upgraded")) == [
        SourceCall(
            type="track",
            event="Plan Upgraded",
            user_id="user_8f14e45f",
            message_id="evt_1QEv9ZLkdIwHu7ixKq2W5mTs",
            timestamp=datetime(2026, 11, 10, 16, 0, tzinfo=UTC),
            properties={
                "stripe_customer_id": CUSTOMER,
                "subscription_id": SUBSCRIPTION,
                "plan": TEAM,
                "price": 99.0,
                "currency": "USD",
                "interval": "month",
                "previous_plan": PRO,
                "previous_price": 49.0,
                "revenue": 99.0,
            },
        )
    ]


def downgrade(event: dict[str, Any]) -> None:
    data = event["data"]
    data["object"]["items"], data["previous_attributes"]["items"] = (
        data["previous_attributes"]["items"],
        data["object"]["items"],
    )


def more_seats(event: dict[str, Any]) -> None:
    data = event["data"]
    data["object"]["items"] = copy.deepcopy(data["previous_attributes"]["items"])
    data["object"]["items"]["data"][0]["quantity"] = 5


def renewal(event: dict[str, Any]) -> None:
    """A new period: since API version 2025-03-31 the items carry their periods, so the whole
    list is in previous_attributes, with the same prices."""
    data = event["data"]
    data["previous_attributes"] = {
        "items": copy.deepcopy(data["object"]["items"]),
        "latest_invoice": "in_1QJ0aaLkdIwHu7ixP0Qr5sTu",
    }


def metadata_only(event: dict[str, Any]) -> None:
    event["data"]["previous_attributes"] = {"metadata": {}}


def cheaper_per_month_yearly(event: dict[str, Any]) -> None:
    new = price(event["data"]["object"]["items"]["data"][0])
    new["unit_amount"], new["recurring"]["interval"] = 49000, "year"  # 490 a year < 49 a month


def during_a_trial(event: dict[str, Any]) -> None:
    event["data"]["object"]["status"] = "trialing"  # paid for, or not, at the trial's end


def usage_based(event: dict[str, Any]) -> None:
    new = price(event["data"]["object"]["items"]["data"][0])
    new["unit_amount"] = new["unit_amount_decimal"] = None  # tiered: no unit amount
    new["recurring"]["usage_type"] = "metered"


@pytest.mark.parametrize(
    "change",
    [
        downgrade,
        more_seats,
        renewal,
        metadata_only,
        cheaper_per_month_yearly,
        during_a_trial,
        usage_based,
    ],
)
def test_an_update_that_is_not_a_move_to_a_higher_price_is_ignored(change: Any) -> None:
    event = load("stripe_subscription_upgraded")
    change(event)
    with pytest.raises(UnsupportedTopic):
        stripe_calls(event)


def test_prices_billed_over_different_intervals_compare_per_day() -> None:
    event = load("stripe_subscription_upgraded")
    new = price(event["data"]["object"]["items"]["data"][0])
    new["unit_amount"], new["recurring"]["interval"] = 99000, "year"  # 990 a year > 49 a month
    [call] = stripe_calls(event)
    assert call.event == "Plan Upgraded"
    assert (call.properties["price"], call.properties["interval"]) == (990.0, "year")
    assert call.properties["revenue"] == 990.0


def test_a_legacy_plan_change_compares_the_plans() -> None:
    event = load("stripe_subscription_upgraded")
    previous = event["data"]["previous_attributes"]
    del previous["items"]  # only `plan` changed, as API versions without items sent it
    [call] = stripe_calls(event)
    assert (call.event, call.properties["previous_plan"]) == ("Plan Upgraded", PRO)


def test_a_trial_that_becomes_paid_is_subscription_started_with_the_plan_price() -> None:
    [call] = stripe_calls(load("stripe_subscription_trial_ended"))
    assert (call.event, call.user_id, call.message_id) == (
        "Subscription Started",
        None,
        "evt_1QAe7uLkdIwHu7ixb4Yt0Jc2",
    )
    assert call.properties == {
        "stripe_customer_id": CUSTOMER,
        "subscription_id": SUBSCRIPTION,
        "plan": PRO,
        "price": 49.0,
        "currency": "USD",
        "interval": "month",
        "from_trial": True,
        "revenue": 49.0,
    }


def test_a_trial_that_ends_unpaid_or_paused_is_ignored() -> None:
    event = load("stripe_subscription_trial_ended")
    event["data"]["object"]["status"] = "paused"
    with pytest.raises(UnsupportedTopic):
        stripe_calls(event)


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
                "plan": PRO,
                "cancellation_reason": "cancellation_requested",
            },
        )
    ]


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
        "plan": PRO,
    }


def test_the_plan_falls_back_to_the_legacy_plan_field() -> None:
    event = load("stripe_subscription_deleted")
    event["data"]["object"]["items"] = {"object": "list", "data": []}
    event["data"]["object"]["plan"] = {"id": "plan_legacy_gold"}
    assert stripe_calls(event)[0].properties["plan"] == "plan_legacy_gold"


def test_a_first_paid_invoice_is_subscription_started_with_its_revenue() -> None:
    assert stripe_calls(load("stripe_invoice_paid")) == [
        SourceCall(
            type="track",
            event="Subscription Started",
            user_id="user_8f14e45f",  # the subscription's metadata, copied onto the invoice
            message_id="evt_1QFz2pLkdIwHu7ixN5cV8rXe",
            timestamp=datetime(2026, 11, 19, 14, 53, 23, tzinfo=UTC),
            properties={
                "stripe_customer_id": CUSTOMER,
                "subscription_id": "sub_1QFz2mLkdIwHu7ixR3sLk8Vb",
                "plan": PRO,
                "invoice_id": "in_1QFz2nLkdIwHu7ixW8mPq4Rt",
                "revenue": 49.0,  # amount_paid 4900 cents
                "currency": "USD",
            },
        )
    ]


def test_a_basil_invoice_in_yen_names_its_subscription_and_price_where_that_version_puts_them():
    [call] = stripe_calls(load("stripe_invoice_paid_jpy"))
    assert (call.event, call.user_id) == ("Subscription Started", None)
    assert call.properties == {
        "stripe_customer_id": "cus_RvK3nP8qT2mX5w",
        "subscription_id": "sub_1R2kT8LkdIwHu7ixJp4N6yQe",  # parent.subscription_details
        "plan": "price_1R2k9aLkdIwHu7ixProJpy0M",  # lines.data[0].pricing.price_details
        "invoice_id": "in_1R2kT9LkdIwHu7ixYq3Bn7Lc",
        "revenue": 4900.0,  # JPY has no minor unit: 4900 is 4900 yen, not 49
        "currency": "JPY",
    }


def test_metadata_on_a_basil_invoices_subscription_names_the_user() -> None:
    event = load("stripe_invoice_paid_jpy")
    event["data"]["object"]["parent"]["subscription_details"]["metadata"] = {"user_id": "u-jp"}
    assert stripe_calls(event)[0].user_id == "u-jp"


@pytest.mark.parametrize(
    ("amount", "currency", "major"),
    [
        (4900, "usd", 49.0),
        (1999, "EUR", 19.99),
        (4900, "jpy", 4900.0),
        (15000, "krw", 15000.0),
        (990, "clp", 990.0),
        (4900, "kwd", 4.9),  # three decimals: fils
        (1234, "bhd", 1.234),
        (490000, "isk", 4900.0),  # zero-decimal in practice, two-decimal in Stripe's API
        (0, "usd", 0.0),
    ],
)
def test_amounts_are_read_in_the_currencys_smallest_unit(
    amount: int, currency: str, major: float
) -> None:
    assert major_units(amount, currency) == major
    event = load("stripe_invoice_paid")
    event["data"]["object"].update(amount_paid=amount or 1, currency=currency)
    assert stripe_calls(event)[0].properties["revenue"] == major_units(amount or 1, currency)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"billing_reason": "subscription_cycle"}, id="renewal"),
        pytest.param({"billing_reason": "subscription_update"}, id="proration"),
        pytest.param({"billing_reason": "manual"}, id="one-off"),
        pytest.param({"billing_reason": None}, id="no-reason"),
        pytest.param({"amount_paid": 0}, id="a-trials-first-invoice"),
    ],
)
def test_invoices_that_start_no_subscription_are_ignored(change: dict[str, Any]) -> None:
    event = load("stripe_invoice_paid")
    event["data"]["object"].update(change)
    with pytest.raises(UnsupportedTopic):
        stripe_calls(event)


@pytest.mark.parametrize(
    "kind",
    [
        "customer.subscription.trial_will_end",
        "invoice.payment_succeeded",
        "invoice.payment_failed",
        "checkout.session.completed",
        None,
    ],
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


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"currency": None}, id="no-currency"),
        pytest.param({"currency": "dollars"}, id="not-a-currency-code"),
        pytest.param({"amount_paid": "4900"}, id="amount-not-an-integer"),
        pytest.param({"amount_paid": 49.0}, id="amount-a-float"),
        pytest.param({"amount_paid": -4900}, id="amount-negative"),
        pytest.param({"amount_paid": 10**40}, id="amount-past-any-price"),
    ],
)
def test_a_first_invoice_without_a_readable_amount_is_an_invalid_payload(
    change: dict[str, object],
) -> None:
    event = load("stripe_invoice_paid")
    event["data"]["object"].update(change)
    with pytest.raises(InvalidPayload):
        stripe_calls(event)


@PROPERTY
@given(payload=spoiled([load(name) for name in FIXTURES]))
def test_any_spoiled_stripe_event_maps_or_is_refused_with_the_sources_own_errors(
    payload: Any,
) -> None:
    """One value anywhere in a genuine event replaced by any JSON: a call the API's models
    take (or refuse by field), InvalidPayload (422) or UnsupportedTopic (200 ignored), never
    another exception (a 500, which Stripe retries for days)."""
    try:
        calls = stripe_calls(parse_json(json.dumps(payload)))
    except (InvalidPayload, UnsupportedTopic):
        return
    mapped(calls)
