"""Senders' payloads as our calls (Segment-spec dicts), with our event names.

Shopify: checkouts/create -> Checkout Started, checkouts/update (not completed) -> Product
  Added with the cart's items, orders/create -> Order Completed with revenue; each preceded by
  an identify carrying the email, so the journey can write to the shopper.
Stripe: customer.subscription.created -> Subscription Started, .deleted -> Subscription
  Cancelled; the user is metadata.user_id, else whoever an identify linked to the customer
  (trait stripe_customer_id), else the customer ID itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any


class UnsupportedTopic(Exception):
    """A topic or event type no journey uses: accepted and ignored."""


def _items(payload: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "product_id": str(item.get("product_id")),
            "variant_id": str(item.get("variant_id")),
            "name": item.get("title"),
            "quantity": item.get("quantity"),
            "price": float(item.get("price") or 0),
        }
        for item in payload.get("line_items") or []
    ]


def shopify_calls(headers: Mapping[str, str], payload: dict[str, Any]) -> list[dict[str, Any]]:
    lower = {k.lower(): v for k, v in headers.items()}
    topic = lower.get("x-shopify-topic", "")
    delivery = lower.get("x-shopify-webhook-id") or str(payload.get("id"))
    when = payload.get("updated_at") or payload.get("created_at") or datetime.now(UTC).isoformat()
    customer = payload.get("customer") or {}
    user = (
        {"userId": str(customer["id"])}
        if customer.get("id")
        else {
            "anonymousId": str(
                payload.get("token") or payload.get("cart_token") or payload.get("id")
            )
        }
    )
    if topic == "checkouts/create":
        name = "Checkout Started"
    elif topic == "checkouts/update":
        if payload.get("completed_at"):
            raise UnsupportedTopic("a completed checkout: orders/create reports the purchase")
        name = "Product Added"
    elif topic == "orders/create":
        name = "Order Completed"
    else:
        raise UnsupportedTopic(f"Shopify topic {topic or '(none)'!r}")
    properties: dict[str, Any] = {
        "items": _items(payload),
        "currency": payload.get("currency"),
        "shopify_id": str(payload.get("id")),
    }
    if name == "Order Completed":
        properties["order_id"] = str(payload.get("id"))
        properties["revenue"] = float(payload.get("total_price") or 0)
    else:
        properties["cart_value"] = float(payload.get("total_price") or 0)
        properties["checkout_url"] = payload.get("abandoned_checkout_url")
    calls = []
    email = payload.get("email") or customer.get("email")
    if email:
        traits = {"email": email, "shopify_customer_id": customer.get("id")}
        for ours, theirs in (("first_name", "first_name"), ("last_name", "last_name")):
            if customer.get(theirs):
                traits[ours] = customer[theirs]
        known = {k: v for k, v in traits.items() if v}
        calls.append(
            {"type": "identify", **user, "messageId": f"shopify:{delivery}:identify",
             "timestamp": when, "traits": known}
        )  # fmt: skip
    calls.append(
        {"type": "track", "event": name, **user, "messageId": f"shopify:{delivery}",
         "timestamp": when, "properties": properties}
    )  # fmt: skip
    return calls


STRIPE_EVENTS = {
    "customer.subscription.created": "Subscription Started",
    "customer.subscription.deleted": "Subscription Cancelled",
}


def stripe_calls(
    payload: dict[str, Any], resolve: Callable[[str], str | None] = lambda _: None
) -> list[dict[str, Any]]:
    name = STRIPE_EVENTS.get(str(payload.get("type")))
    if name is None:
        raise UnsupportedTopic(f"Stripe event {payload.get('type')!r}")
    subscription = (payload.get("data") or {}).get("object") or {}
    customer = str(subscription.get("customer") or "")
    user = (subscription.get("metadata") or {}).get("user_id") or resolve(customer) or customer
    items = ((subscription.get("items") or {}).get("data") or [{}])[0]
    properties = {
        "stripe_customer_id": customer,
        "subscription_id": subscription.get("id"),
        "plan": (items.get("price") or items.get("plan") or {}).get("id"),
    }
    reason = (subscription.get("cancellation_details") or {}).get("reason")
    if reason:
        properties["cancellation_reason"] = reason
    created = payload.get("created")
    when = datetime.fromtimestamp(int(created), UTC) if created else datetime.now(UTC)
    return [
        {"type": "track", "event": name, "userId": user, "messageId": str(payload.get("id")),
         "timestamp": when.isoformat(), "properties": properties}
    ]  # fmt: skip
