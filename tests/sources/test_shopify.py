"""Shopify checkouts and orders become exactly the calls the cart-recovery journey expects."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from starter.sources import InvalidPayload, SourceCall, UnsupportedTopic, shopify_calls
from starter.sources.shopify import body_digest
from tests.sources.payloads import load

WEBHOOK_ID = "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043"
TOKEN = "b7e4f6a2c0d94f1e8c2a6b5d3e1f0a9c"
CUSTOMER = "6940095564008"
TRIGGERED = datetime(2026, 11, 24, 15, 2, 46, 123456, tzinfo=UTC)
PRODUCTS = [  # Segment's e-commerce product fields, from Shopify's documented line items
    {
        "product_id": "7340195201256",
        "variant_id": "41914585268456",
        "sku": "CLOAK-BLK-L",
        "name": "Wool Cloak",
        "variant": "Black / L",
        "quantity": 1,
        "price": 149.0,
        "currency": "USD",
    },
    {
        "product_id": "7340195233992",
        "variant_id": "41914585301224",
        "sku": "GLOVE-BRN",
        "name": "Leather Gloves",
        "variant": "Brown",
        "quantity": 2,
        "price": 24.5,
        "currency": "USD",
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


def key(topic: str, payload: dict[str, Any]) -> str:
    """The message ID stem: the topic and a digest of the body, never the webhook ID."""
    return f"shopify:{topic}:{body_digest(payload)}"


def identify(user: dict[str, Any], stem: str, when: datetime = TRIGGERED) -> SourceCall:
    return SourceCall(
        type="identify",
        **user,
        message_id=f"{stem}:identify",
        timestamp=when,
        traits=TRAITS,
    )


def cart(event: str, topic: str) -> SourceCall:
    return SourceCall(
        type="track",
        event=event,
        user_id=CUSTOMER,
        message_id=f"{key(topic, load('shopify_checkout'))}:track",
        timestamp=TRIGGERED,
        properties={
            "products": PRODUCTS,
            "cart_value": 198.0,
            "currency": "USD",
            "checkout_token": TOKEN,
            "cart_url": load("shopify_checkout")["abandoned_checkout_url"],
        },
    )


def test_checkouts_create_identifies_the_shopper_then_starts_the_checkout() -> None:
    calls = shopify_calls(headers("checkouts/create"), load("shopify_checkout"))
    stem = key("checkouts/create", load("shopify_checkout"))
    assert calls == [
        identify({"user_id": CUSTOMER}, stem),
        cart("Checkout Started", "checkouts/create"),
    ]


def test_checkouts_update_with_items_is_a_cart_change() -> None:
    calls = shopify_calls(headers("checkouts/update"), load("shopify_checkout"))
    stem = key("checkouts/update", load("shopify_checkout"))
    assert calls == [
        identify({"user_id": CUSTOMER}, stem),
        cart("Cart Updated", "checkouts/update"),
    ]
    assert calls[1].timestamp.tzinfo is UTC


def test_a_completed_checkout_yields_nothing_because_the_order_reports_the_purchase() -> None:
    payload = {**load("shopify_checkout"), "completed_at": "2026-11-24T10:07:30-05:00"}
    assert shopify_calls(headers("checkouts/update"), payload) == []


def test_an_emptied_checkout_yields_nothing() -> None:
    payload = {**load("shopify_checkout"), "line_items": []}
    assert shopify_calls(headers("checkouts/update"), payload) == []


def test_orders_create_completes_the_order() -> None:
    calls = shopify_calls(headers("orders/create"), load("shopify_order"))
    stem = key("orders/create", load("shopify_order"))
    assert calls == [
        identify({"user_id": CUSTOMER}, stem),
        SourceCall(
            type="track",
            event="Order Completed",
            user_id=CUSTOMER,
            message_id=f"{stem}:track",
            timestamp=TRIGGERED,
            properties={
                "order_id": "5190232146152",
                "revenue": 213.84,
                "currency": "USD",
                "products": PRODUCTS,
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
    stem = key("checkouts/create", checkout)
    assert who == identify({"anonymous_id": TOKEN}, stem)  # names from the billing address
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
    assert track.message_id == f"{key('checkouts/update', load('shopify_checkout'))}:track"


def test_redelivery_maps_to_the_same_message_ids() -> None:
    first = shopify_calls(headers("checkouts/update"), load("shopify_checkout"))
    again = shopify_calls(headers("checkouts/update"), load("shopify_checkout"))
    assert [c.message_id for c in first] == [c.message_id for c in again]


def test_the_same_body_under_a_fresh_webhook_id_is_the_same_message() -> None:
    """The webhook ID is outside Shopify's HMAC: a replayer picks it, so it is no dedupe key."""
    first = shopify_calls(headers("checkouts/update"), load("shopify_checkout"))
    fresh = headers("checkouts/update", **{"X-Shopify-Webhook-Id": "replayed-with-a-new-id"})
    del fresh["X-Shopify-Triggered-At"]  # also outside the HMAC
    again = shopify_calls(fresh, load("shopify_checkout"))
    assert [c.message_id for c in first] == [c.message_id for c in again]
    changed = {**load("shopify_checkout"), "updated_at": "2026-11-24T10:09:00-05:00"}
    other = shopify_calls(headers("checkouts/update"), changed)
    assert {c.message_id for c in other}.isdisjoint(c.message_id for c in first)


@pytest.mark.parametrize(
    ("topic", "fixture"),
    [
        ("orders/create", "shopify_checkout"),  # a captured checkout as a purchase
        ("checkouts/create", "shopify_order"),
        ("checkouts/update", "shopify_order"),
    ],
)
def test_a_body_that_is_not_its_topics_resource_is_an_invalid_payload(
    topic: str, fixture: str
) -> None:
    with pytest.raises(InvalidPayload, match="this body is not one"):
        shopify_calls(headers(topic), load(fixture))


def test_an_email_that_is_not_one_address_is_left_out_not_refused() -> None:
    payload = {
        **load("shopify_checkout"),
        "email": "jon.snow@example.com, someone@evil.test",
        "customer": {"id": 6940095564008, "email": "jon@example.com\r\nBcc: x@evil.test"},
    }
    [who, track] = shopify_calls(headers("checkouts/create"), payload)
    assert "email" not in who.traits and who.traits["first_name"] == "Jon"
    assert track.event == "Checkout Started"


@pytest.mark.parametrize("amount", ["inf", "NaN", "1e400", 10**400])
def test_an_amount_no_float_can_hold_is_an_invalid_payload(amount: object) -> None:
    with pytest.raises(InvalidPayload, match="total_price"):
        shopify_calls(headers("orders/create"), {**load("shopify_order"), "total_price": amount})


def test_a_time_outside_the_years_1_to_9999_in_utc_is_an_invalid_payload() -> None:
    early = headers("orders/create", **{"X-Shopify-Triggered-At": "0001-01-01T00:00:00+01:00"})
    with pytest.raises(InvalidPayload, match="1 to 9999"):
        shopify_calls(early, load("shopify_order"))


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
