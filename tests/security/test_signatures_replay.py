"""Replays and forgeries against the source webhooks, over real HTTP, with nothing recorded.

tests/sources/test_signatures.py checks each verifier as a function (known answers, tolerance
edges, rotation) and tests/sources/test_routes.py one refusal per route. This adds what an
attacker holding a captured request would try against the running API: the same signed request
after its tolerance (or dated in the future), the old signature under a fresh timestamp, a
tampered body under a genuine signature, and plain redelivery, which the timestamp-less schemes
(Shopify, Segment) leave to deduplication. A refusal must record nothing and explain nothing
that would help a forger; a malformed timestamp must be a 401, not a crash.

Shopify signs the body only: its topic and webhook ID headers are the replayer's to choose. A
captured body is one event per topic however often, and with whatever webhook ID, it is posted
again (the message ID is a digest of the body), and a body is refused under a topic whose
resource it is not (a checkout is never an order).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlmodel import select

from activities.store import EventReceipt, Store
from starter.sources import sign_segment, sign_shopify, sign_standard_webhook, sign_stripe
from starter.sources.signing import TOLERANCE
from tests.security.conftest import SOURCE_SECRETS, LiveStack
from tests.sources.payloads import load

STRIPE = SOURCE_SECRETS["stripe_secret"].get_secret_value()
STANDARD = SOURCE_SECRETS["standard_webhook_secret"].get_secret_value()
SHOPIFY = SOURCE_SECRETS["shopify_secret"].get_secret_value()
SEGMENT = SOURCE_SECRETS["segment_secret"].get_secret_value()

MARGIN = 60
"""Seconds between a test's timestamps and the tolerance's edge, so a slow machine cannot move
a request across it (the exact edges are tested without HTTP in tests/sources)."""


def stripe_event(user: str) -> bytes:
    return json.dumps(
        {"id": f"evt_{user}", "type": "customer.subscription.deleted", "created": int(time.time()),
         "data": {"object": {"id": f"sub_{user}", "customer": f"cus_{user}",
                             "metadata": {"user_id": user}, "items": {"data": []}}}}
    ).encode()  # fmt: skip


def segment_call(user: str) -> bytes:
    return json.dumps(
        {"type": "track", "event": "Subscription Cancelled", "userId": user,
         "messageId": f"msg-{user}", "properties": {"plan": "pro"}}
    ).encode()  # fmt: skip


def standard_headers(body: bytes, msg_id: str, at: int) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(at),
        "webhook-signature": sign_standard_webhook(msg_id, at, body, STANDARD),
    }


def receipts(api: Any, user: str) -> list[EventReceipt]:
    with api.store.session() as session:
        return list(session.exec(select(EventReceipt).where(EventReceipt.user_id == user)))


@dataclass
class Api:
    http: httpx.AsyncClient
    store: Store


@pytest.fixture
async def api(live_stack: LiveStack) -> AsyncIterator[Api]:
    """The live API (every source configured, the shipped journeys on a worker); each test uses
    its own user IDs, so one stack serves the module."""
    async with httpx.AsyncClient(base_url=live_stack.url, timeout=60) as http:
        yield Api(http, live_stack.store)


@pytest.mark.parametrize("offset", [-(TOLERANCE + MARGIN), TOLERANCE + MARGIN, -86_400])
async def test_a_correctly_signed_stripe_event_outside_the_tolerance_is_refused(
    api: Any, offset: int
) -> None:
    user = f"u-{uuid.uuid4().hex[:8]}"
    body = stripe_event(user)
    signature = sign_stripe(body, STRIPE, int(time.time()) + offset)
    answer = await api.http.post(
        "/v1/sources/stripe", content=body, headers={"Stripe-Signature": signature}
    )
    assert answer.status_code == 401 and "stale" in answer.json()["detail"]
    assert receipts(api, user) == []


@pytest.mark.parametrize("offset", [-(TOLERANCE + MARGIN), TOLERANCE + MARGIN, -86_400])
async def test_a_correctly_signed_standard_webhook_outside_the_tolerance_is_refused(
    api: Any, offset: int
) -> None:
    user = f"u-{uuid.uuid4().hex[:8]}"
    body = segment_call(user)
    headers = standard_headers(body, f"msg_{user}", int(time.time()) + offset)
    answer = await api.http.post("/v1/sources/webhook", content=body, headers=headers)
    assert answer.status_code == 401 and "stale" in answer.json()["detail"]
    assert receipts(api, user) == []


async def test_inside_the_tolerance_both_are_taken_and_a_replay_is_a_duplicate(api: Any) -> None:
    """The control for the tests above: a delayed but in-tolerance delivery counts, once."""
    user = f"u-{uuid.uuid4().hex[:8]}"
    at = int(time.time()) - (TOLERANCE - MARGIN)
    stripe = stripe_event(user)
    stripe_headers = {"Stripe-Signature": sign_stripe(stripe, STRIPE, at)}
    standard = segment_call(user)
    headers = standard_headers(standard, f"msg_{user}", at)
    for path, body, sent in (
        ("/v1/sources/stripe", stripe, stripe_headers),
        ("/v1/sources/webhook", standard, headers),
    ):
        first = await api.http.post(path, content=body, headers=sent)
        assert first.status_code == 200, first.text
        assert [c["status"] for c in first.json()["calls"]] == ["accepted"]
        again = await api.http.post(path, content=body, headers=sent)  # captured and replayed
        assert [c["status"] for c in again.json()["calls"]] == ["duplicate"]
    assert len(receipts(api, user)) == 2  # one per delivery, not per request
    summary = api.store.event_summary(user, "Subscription Cancelled")
    assert summary is not None and summary.count == 2


async def test_an_old_signature_under_a_fresh_timestamp_is_refused(api: Any) -> None:
    """A replayer cannot refresh the timestamp: it is inside what was signed."""
    user = f"u-{uuid.uuid4().hex[:8]}"
    old, now = int(time.time()) - 3_600, int(time.time())
    body = stripe_event(user)
    v1 = sign_stripe(body, STRIPE, old).split(",")[1]
    answer = await api.http.post(
        "/v1/sources/stripe", content=body, headers={"Stripe-Signature": f"t={now},{v1}"}
    )
    assert answer.status_code == 401 and "stale" not in answer.json()["detail"]

    body = segment_call(user)
    headers = {**standard_headers(body, f"msg_{user}", old), "webhook-timestamp": str(now)}
    answer = await api.http.post("/v1/sources/webhook", content=body, headers=headers)
    assert answer.status_code == 401 and "stale" not in answer.json()["detail"]
    assert receipts(api, user) == []


async def test_a_genuine_signature_on_a_tampered_body_is_refused_by_every_source(
    api: Any,
) -> None:
    user = f"u-{uuid.uuid4().hex[:8]}"
    now = int(time.time())
    stripe, call = stripe_event(user), segment_call(user)
    shopify = json.dumps({"id": 1, "customer": {"id": user}, "total_price": "59.90"}).encode()
    cases = [
        ("stripe", stripe, {"Stripe-Signature": sign_stripe(stripe, STRIPE, now)}),
        ("webhook", call, standard_headers(call, f"msg_{user}", now)),
        ("segment", call, {"X-Signature": sign_segment(call, SEGMENT)}),
        ("shopify", shopify, {"X-Shopify-Hmac-Sha256": sign_shopify(shopify, SHOPIFY),
                              "X-Shopify-Topic": "orders/create",
                              "X-Shopify-Webhook-Id": f"wh-{user}"}),
    ]  # fmt: skip
    for source, body, headers in cases:
        for tampered in (body.replace(user.encode(), b"u-victim"), body + b" ", body[:-1]):
            answer = await api.http.post(f"/v1/sources/{source}", content=tampered, headers=headers)
            assert answer.status_code == 401, (source, answer.text)
            # The answer names the failure, never the signature that would have passed.
            for secret in (STRIPE, STANDARD, SEGMENT, SHOPIFY):
                assert secret not in answer.text
            assert sign_segment(tampered, SEGMENT) not in answer.text
            assert sign_shopify(tampered, SHOPIFY) not in answer.text
    assert receipts(api, user) == [] and receipts(api, "u-victim") == []


async def test_a_redelivered_segment_or_shopify_request_has_one_effect(api: Any) -> None:
    """No timestamp in these schemes: a captured request stays valid, so the message ID
    (Segment's messageId, Shopify's webhook ID) is what makes a replay harmless."""
    user = f"u-{uuid.uuid4().hex[:8]}"
    call = segment_call(user)
    order = shopify_body("shopify_order", user)
    shopify = {
        "X-Shopify-Hmac-Sha256": sign_shopify(order, SHOPIFY),
        "X-Shopify-Topic": "orders/create",
        "X-Shopify-Webhook-Id": f"wh-{user}",
    }
    for source, body, headers in (
        ("segment", call, {"X-Signature": sign_segment(call, SEGMENT)}),
        ("shopify", order, shopify),
    ):
        statuses = []
        for _ in range(3):
            answer = await api.http.post(f"/v1/sources/{source}", content=body, headers=headers)
            assert answer.status_code == 200, answer.text
            statuses.append([c["status"] for c in answer.json()["calls"]])
        assert statuses[1] == statuses[2] == ["duplicate"] * len(statuses[0])
    assert api.store.event_summary(user, "Subscription Cancelled").count == 1  # type: ignore[union-attr]
    assert api.store.event_summary(user, "Order Completed").count == 1  # type: ignore[union-attr]


@pytest.mark.parametrize("stamp", ["²", "١٧٩٥٥٣٢٤٠٠", "9" * 5000, "-1", "1e9", "0x10"])
async def test_a_malformed_signed_timestamp_is_a_401_not_a_crash(api: Any, stamp: str) -> None:
    """Unicode digits pass `str.isdigit` and thousands of digits overflow `int()`: both once
    escaped as ValueError (a 500)."""
    body = segment_call(f"u-{uuid.uuid4().hex[:8]}")
    signature = sign_stripe(body, STRIPE, int(time.time())).split(",")[1]
    raw = f"t={stamp},{signature}".encode()  # as bytes: httpx sends str headers as ASCII only
    answer = await api.http.post(
        "/v1/sources/stripe", content=body, headers={"Stripe-Signature": raw}
    )
    assert answer.status_code == 401
    headers: dict[str, str | bytes] = {**standard_headers(body, "msg_x", int(time.time()))}
    headers["webhook-timestamp"] = stamp.encode()
    answer = await api.http.post("/v1/sources/webhook", content=body, headers=headers)
    assert answer.status_code == 401


def shopify_body(fixture: str, user: str) -> bytes:
    """Shopify's documented example (tests/sources/fixtures), as this user's."""
    payload = load(fixture)
    payload["customer"]["id"] = user
    return json.dumps(payload).encode()


def shopify_headers(body: bytes, topic: str, webhook_id: str) -> dict[str, str]:
    """What a replayer sends: the captured signature, and any topic and webhook ID it likes."""
    return {
        "X-Shopify-Hmac-Sha256": sign_shopify(body, SHOPIFY),
        "X-Shopify-Topic": topic,
        "X-Shopify-Webhook-Id": webhook_id,
    }


async def test_a_captured_shopify_body_under_fresh_webhook_ids_and_topics_is_one_event(
    api: Any,
) -> None:
    """Shopify's HMAC covers the body only: one captured checkout once became any number of
    cart changes, and any number of "Order Completed" (the cart journey's goal) as orders/create."""
    user = f"u-{uuid.uuid4().hex[:8]}"
    checkout = shopify_body("shopify_checkout", user)
    first = await api.http.post(
        "/v1/sources/shopify", content=checkout,
        headers=shopify_headers(checkout, "checkouts/update", f"wh-{user}"),
    )  # fmt: skip
    assert first.status_code == 200, first.text
    assert [c["status"] for c in first.json()["calls"]] == ["accepted", "accepted"]
    for attempt in range(3):  # the same topic, a fresh webhook ID each time
        again = await api.http.post(
            "/v1/sources/shopify", content=checkout,
            headers=shopify_headers(checkout, "checkouts/update", f"wh-{user}-{attempt}"),
        )  # fmt: skip
        assert again.status_code == 200, again.text
        assert [c["status"] for c in again.json()["calls"]] == ["duplicate", "duplicate"]
    for attempt in range(3):  # as a purchase
        forged = await api.http.post(
            "/v1/sources/shopify", content=checkout,
            headers=shopify_headers(checkout, "orders/create", f"wh-order-{user}-{attempt}"),
        )  # fmt: skip
        assert forged.status_code == 422, forged.text
        assert "orders/create sends an order" in forged.json()["detail"]
    summary = api.store.event_summary(user, "Cart Updated")
    assert summary is not None and summary.count == 1
    assert api.store.event_summary(user, "Order Completed") is None
    assert {r.event for r in receipts(api, user)} == {None, "Cart Updated"}  # identify, track


async def test_a_captured_shopify_order_is_one_purchase_and_never_a_checkout(api: Any) -> None:
    user = f"u-{uuid.uuid4().hex[:8]}"
    order = shopify_body("shopify_order", user)
    for attempt in range(3):
        answer = await api.http.post(
            "/v1/sources/shopify", content=order,
            headers=shopify_headers(order, "orders/create", f"wh-{user}-{attempt}"),
        )  # fmt: skip
        assert answer.status_code == 200, answer.text
        expected = "accepted" if attempt == 0 else "duplicate"
        assert [c["status"] for c in answer.json()["calls"]] == [expected, expected]
    for topic in ("checkouts/create", "checkouts/update"):
        answer = await api.http.post(
            "/v1/sources/shopify", content=order,
            headers=shopify_headers(order, topic, f"wh-{user}-{topic}"),
        )  # fmt: skip
        assert answer.status_code == 422, answer.text
    assert api.store.event_summary(user, "Order Completed").count == 1  # type: ignore[union-attr]
    assert api.store.event_summary(user, "Cart Updated") is None
    assert api.store.event_summary(user, "Checkout Started") is None
