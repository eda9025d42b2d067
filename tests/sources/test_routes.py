"""The source routes over real HTTP: Shopify, Stripe and Standard Webhooks, by their signatures."""

from __future__ import annotations

import json
import time
import uuid

from pydantic import SecretStr

from starter.sources import sign_segment, sign_shopify, sign_standard_webhook, sign_stripe
from workflows.journeys.cart_recovery import CartRecovery

SECRETS = {
    "shopify_secret": SecretStr("shpss_test"),
    "stripe_secret": SecretStr("whsec_stripe_test"),
    "standard_webhook_secret": SecretStr("whsec_" + "dGVzdC1zdGFuZGFyZC1rZXk="),
    "segment_secret": SecretStr("segment-shared-secret"),
}


def checkout(customer_id: int, completed: bool = False) -> dict[str, object]:
    return {
        "id": 981, "token": "tok-1", "email": "shopper@example.test", "currency": "EUR",
        "total_price": "59.90", "updated_at": "2026-11-24T10:00:00+01:00",
        "completed_at": "2026-11-24T10:05:00+01:00" if completed else None,
        "abandoned_checkout_url": "https://shop.test/recover/tok-1",
        "customer": {"id": customer_id, "first_name": "Sam", "email": "shopper@example.test"},
        "line_items": [{"product_id": 7, "variant_id": 70, "title": "Lamp", "quantity": 1,
                        "price": "59.90"}],
    }  # fmt: skip


async def test_a_shopify_cart_update_identifies_the_shopper_and_starts_cart_recovery(api_for):
    api = await api_for(CartRecovery, **SECRETS)
    customer = int(uuid.uuid4().int % 10**9)
    body = json.dumps(checkout(customer)).encode()
    headers = {
        "X-Shopify-Topic": "checkouts/update",
        "X-Shopify-Webhook-Id": f"wh-{customer}",
        "X-Shopify-Hmac-Sha256": sign_shopify(body, "shpss_test"),
        "Content-Type": "application/json",
    }
    response = await api.http.post("/v1/sources/shopify", content=body, headers=headers)
    assert response.status_code == 200, response.text
    [identify, track] = response.json()["calls"]
    assert identify["status"] == "accepted"
    assert track["journeys"][0]["journey"] == "cart_recovery"
    profile = api.stack.store.get_profile(str(customer))
    assert profile.email == "shopper@example.test" and profile.traits["first_name"] == "Sam"
    summary = api.stack.store.event_summary(str(customer), "Cart Updated")
    assert summary.last_properties["products"][0]["name"] == "Lamp"
    assert summary.last_properties["cart_value"] == 59.9

    again = await api.http.post("/v1/sources/shopify", content=body, headers=headers)
    assert [c["status"] for c in again.json()["calls"]] == ["duplicate", "duplicate"]

    tampered = body.replace(b"59.90", b"0.01")
    assert (
        await api.http.post("/v1/sources/shopify", content=tampered, headers=headers)
    ).status_code == 401
    headers["X-Shopify-Topic"] = "customers/create"  # a topic no journey uses
    signed = {**headers, "X-Shopify-Hmac-Sha256": sign_shopify(body, "shpss_test")}
    ignored = await api.http.post("/v1/sources/shopify", content=body, headers=signed)
    assert ignored.json()["status"] == "ignored"


async def test_stripe_cancellations_reach_the_user_an_identify_linked_and_stale_ones_fail(api_for):
    api = await api_for(CartRecovery, **SECRETS)
    user = f"user-{uuid.uuid4().hex[:8]}"
    await api.http.post(
        "/v1/identify", json={"userId": user, "traits": {"stripe_customer_id": f"cus_{user}"}}
    )
    event = {
        "id": f"evt_{user}", "type": "customer.subscription.deleted", "created": int(time.time()),
        "data": {"object": {"id": "sub_1", "customer": f"cus_{user}", "metadata": {},
                            "cancellation_details": {"reason": "cancellation_requested"},
                            "items": {"data": [{"price": {"id": "price_pro"}}]}}},
    }  # fmt: skip
    body = json.dumps(event).encode()
    signature = sign_stripe(body, "whsec_stripe_test", int(time.time()))
    response = await api.http.post(
        "/v1/sources/stripe", content=body, headers={"Stripe-Signature": signature}
    )
    assert response.status_code == 200, response.text
    summary = api.stack.store.event_summary(user, "Subscription Cancelled")
    assert summary.last_properties["plan"] == "price_pro"

    stale = sign_stripe(body, "whsec_stripe_test", int(time.time()) - 301)
    refused = await api.http.post(
        "/v1/sources/stripe", content=body, headers={"Stripe-Signature": stale}
    )
    assert refused.status_code == 401 and "stale" in refused.json()["detail"]


async def test_standard_webhooks_carry_segment_calls_and_unconfigured_sources_are_404(api_for):
    api = await api_for(CartRecovery, **SECRETS)
    user = f"user-{uuid.uuid4().hex[:8]}"
    body = json.dumps({"type": "track", "event": "Page Viewed", "userId": user}).encode()
    now = int(time.time())
    headers = {
        "webhook-id": f"msg_{user}",
        "webhook-timestamp": str(now),
        "webhook-signature": sign_standard_webhook(
            f"msg_{user}", now, body, SECRETS["standard_webhook_secret"].get_secret_value()
        ),
    }
    response = await api.http.post("/v1/sources/webhook", content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert api.stack.store.event_summary(user, "Page Viewed").count == 1
    bad = {**headers, "webhook-signature": "v1,AAAA"}
    assert (
        await api.http.post("/v1/sources/webhook", content=body, headers=bad)
    ).status_code == 401

    plain = await api_for(CartRecovery)
    assert (await plain.http.post("/v1/sources/shopify", content=b"{}")).status_code == 404


async def test_segments_webhook_destination_signs_with_x_signature(api_for):
    api = await api_for(CartRecovery, **SECRETS)
    user = f"user-{uuid.uuid4().hex[:8]}"
    identify = json.dumps(
        {"type": "identify", "userId": user, "messageId": f"seg-{user}",
         "traits": {"email": f"{user}@example.test"}}
    ).encode()  # fmt: skip
    page = json.dumps({"type": "page", "userId": user, "messageId": f"pg-{user}"}).encode()
    for body, expected in ((identify, "accepted"), (page, "ignored")):
        signed = {"X-Signature": sign_segment(body, "segment-shared-secret")}
        response = await api.http.post("/v1/sources/segment", content=body, headers=signed)
        assert response.status_code == 200, response.text
        assert response.json()["status"] == expected
    assert api.stack.store.get_profile(user).email == f"{user}@example.test"
    forged = {"X-Signature": sign_segment(identify, "another-secret")}
    assert (
        await api.http.post("/v1/sources/segment", content=identify, headers=forged)
    ).status_code == 401
