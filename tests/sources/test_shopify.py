"""Shopify checkouts and orders become exactly the calls the cart-recovery journey expects."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from starter.sources import InvalidPayload, SourceCall, UnsupportedTopic, shopify_calls
from tests.sources.payloads import load

WEBHOOK_ID = "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043"
TOKEN = "b7e4f6a2c0d94f1e8c2a6b5d3e1f0a9c"
CUSTOMER = "6940095564008"
TRIGGERED = datetime(2026, 11, 24, 15, 2, 46, 123456, tzinfo=UTC)
ITEMS = [
    {
        "product_id": "7340195201256",
        "variant_id": "41914585268456",
        "title": "Wool Cloak",
        "quantity": 1,
        "price": 149.0,
    },
    {
        "product_id": "7340195233992",
        "variant_id": "41914585301224",
        "title": "Leather Gloves",
        "quantity": 2,
        "price": 24.5,
    },
]
TRAITS = {"email": "jon.snow@example.com", "first_name": "Jon", "last_name": "Snow"}


def headers(topic: str, **extra: str) -> dict[str, str]:
    return {
        "X-Shopify-Topic": topic,
        "X-Shopify-Hmac-Sha256": "verified separately",
        "X-Shopify-Shop-Domain": "winterfell-outfitters.myshopify.com",
        "X-Shopify-API-Version": "2026-10",
        "X-Shopify-Webhook-Id": WEBHOOK_ID,
        "X-Shopify-Event-Id": "98880550-7158-44d4-b7cd-2c97c8a091b5",
        "X-Shopify-Triggered-At": "2026-11-24T15:02:46.123456789Z",
        **extra,
    }


def identify(user: dict[str, Any], when: datetime = TRIGGERED) -> SourceCall:
    return SourceCall(
        type="identify",
        **user,
        message_id=f"shopify:{WEBHOOK_ID}:identify",
        timestamp=when,
        traits=TRAITS,
    )


def cart(event: str) -> SourceCall:
    return SourceCall(
        type="track",
        event=event,
        user_id=CUSTOMER,
        message_id=f"shopify:{WEBHOOK_ID}:track",
        timestamp=TRIGGERED,
        properties={
            "items": ITEMS,
            "cart_value": 198.0,
            "currency": "USD",
            "checkout_token": TOKEN,
            "abandoned_checkout_url": load("shopify_checkout")["abandoned_checkout_url"],
        },
    )


def test_checkouts_create_identifies_the_shopper_then_starts_the_checkout() -> None:
    calls = shopify_calls(headers("checkouts/create"), load("shopify_checkout"))
    assert calls == [identify({"user_id": CUSTOMER}), cart("Checkout Started")]


def test_checkouts_update_with_items_is_a_cart_change() -> None:
    calls = shopify_calls(headers("checkouts/update"), load("shopify_checkout"))
    assert calls == [identify({"user_id": CUSTOMER}), cart("Product Added")]
    assert calls[1].timestamp.tzinfo is UTC


def test_a_completed_checkout_yields_nothing_because_the_order_reports_the_purchase() -> None:
    payload = {**load("shopify_checkout"), "completed_at": "2026-11-24T10:07:30-05:00"}
    assert shopify_calls(headers("checkouts/update"), payload) == []


def test_an_emptied_checkout_yields_nothing() -> None:
    payload = {**load("shopify_checkout"), "line_items": []}
    assert shopify_calls(headers("checkouts/update"), payload) == []


def test_orders_create_completes_the_order() -> None:
    calls = shopify_calls(headers("orders/create"), load("shopify_order"))
    assert calls == [
        identify({"user_id": CUSTOMER}),
        SourceCall(
            type="track",
            event="Order Completed",
            user_id=CUSTOMER,
            message_id=f"shopify:{WEBHOOK_ID}:track",
            timestamp=TRIGGERED,
            properties={
                "order_id": "5190232146152",
                "revenue": 213.84,
                "currency": "USD",
                "items": ITEMS,
                "checkout_token": TOKEN,
            },
        ),
    ]


def test_a_guest_is_anonymous_under_the_checkout_token_on_checkout_and_order_alike() -> None:
    checkout = {**load("shopify_checkout"), "customer": None}
    order = load("shopify_order")
    del order["customer"]
    [who, started] = shopify_calls(headers("checkouts/create"), checkout)
    [_, ordered] = shopify_calls(headers("orders/create"), order)
    assert who == identify({"anonymous_id": TOKEN})  # names from the billing address
    assert (started.user_id, started.anonymous_id) == (None, TOKEN)
    assert (ordered.user_id, ordered.anonymous_id) == (None, TOKEN)


def test_without_email_or_name_there_is_no_identify() -> None:
    payload = {
        **load("shopify_checkout"),
        "email": "",
        "customer": {"id": 6940095564008},
        "billing_address": None,
    }
    [call] = shopify_calls(headers("checkouts/create"), payload)
    assert (call.type, call.event, call.user_id) == ("track", "Checkout Started", CUSTOMER)


def test_headers_are_case_insensitive_and_timestamps_fall_back_to_the_payload() -> None:
    lower = {k.lower(): v for k, v in headers("checkouts/update").items()}
    del lower["x-shopify-triggered-at"]
    [who, track] = shopify_calls(lower, load("shopify_checkout"))
    updated = datetime(2026, 11, 24, 15, 2, 45, tzinfo=UTC)  # 10:02:45-05:00
    assert who.timestamp == track.timestamp == updated
    assert track.timestamp.utcoffset() is not None and track.timestamp.tzinfo is UTC
    assert track.message_id == f"shopify:{WEBHOOK_ID}:track"


def test_redelivery_maps_to_the_same_message_ids() -> None:
    first = shopify_calls(headers("checkouts/update"), load("shopify_checkout"))
    again = shopify_calls(headers("checkouts/update"), load("shopify_checkout"))
    assert [c.message_id for c in first] == [c.message_id for c in again]


@pytest.mark.parametrize("topic", ["products/update", "checkouts/delete", "orders/paid", ""])
def test_other_topics_are_unsupported(topic: str) -> None:
    with pytest.raises(UnsupportedTopic):
        shopify_calls(headers(topic), load("shopify_checkout"))


def test_a_missing_topic_header_is_unsupported() -> None:
    no_topic = {k: v for k, v in headers("x").items() if k != "X-Shopify-Topic"}
    with pytest.raises(UnsupportedTopic):
        shopify_calls(no_topic, load("shopify_checkout"))


@pytest.mark.parametrize(
    ("change", "drop_header"),
    [
        pytest.param({}, "X-Shopify-Webhook-Id", id="no-webhook-id"),
        pytest.param({"customer": None, "token": None, "cart_token": None}, None, id="nobody"),
        pytest.param({"total_price": "lots"}, None, id="bad-amount"),
        pytest.param({"line_items": "two"}, None, id="bad-items"),
        pytest.param({"customer": "jon"}, None, id="bad-customer"),
    ],
)
def test_malformed_deliveries_are_invalid_payloads(
    change: dict[str, Any], drop_header: str | None
) -> None:
    sent = {k: v for k, v in headers("checkouts/create").items() if k != drop_header}
    with pytest.raises(InvalidPayload):
        shopify_calls(sent, {**load("shopify_checkout"), **change})


def test_no_timestamp_anywhere_is_an_invalid_payload() -> None:
    sent = {k: v for k, v in headers("orders/create").items() if k != "X-Shopify-Triggered-At"}
    payload = {**load("shopify_order"), "updated_at": None, "created_at": None}
    with pytest.raises(InvalidPayload):
        shopify_calls(sent, payload)
