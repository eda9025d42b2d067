"""Shopify webhooks: checkouts and orders as the cart-recovery journey's events.

Shopify has no "abandoned checkout" topic: a checkout that changes and never gets a
`completed_at` is the signal, and the journey's timer decides when it counts as abandoned. So
checkouts/create starts the story ("Checkout Started"), each checkouts/update with items is a
cart change ("Product Added", carrying the whole cart for the email), and orders/create is the
purchase ("Order Completed", the journey's goal). A checkouts/update that carries `completed_at`
yields nothing: the order that follows reports the purchase, and counting both would double it.

Every mapped delivery first identifies the shopper (email and name), so the journey has someone
to write to. A guest has no customer ID; the checkout token is their anonymous ID, and an
order's `checkout_token` is the same value, so a guest's order reaches their checkout's journey.

Dedupe: Shopify delivers at least once; X-Shopify-Webhook-Id is stable across retries of one
delivery and becomes each call's message ID.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starter.sources.errors import InvalidPayload, InvalidSignature, UnsupportedTopic
from starter.sources.models import SourceCall, as_dict, build, header, to_utc
from starter.sources.signing import any_match, required_header, sign_shopify

__all__ = ["TOPICS", "shopify_calls", "verify_shopify"]

TOPICS = {
    "checkouts/create": "Checkout Started",
    "checkouts/update": "Product Added",
    "orders/create": "Order Completed",
}
"""The topics we map, to our event names; any other topic raises UnsupportedTopic."""


def verify_shopify(headers: Mapping[str, str], body: bytes, secret: str) -> None:
    """Check X-Shopify-Hmac-Sha256 against the raw body; raise a SignatureError if it fails.

    Shopify's signature has no timestamp, so there is no staleness check: replays are stopped
    by deduplicating on X-Shopify-Webhook-Id instead.
    """
    given = required_header(headers, "X-Shopify-Hmac-Sha256")
    if not any_match([given], sign_shopify(body, secret)):
        raise InvalidSignature("X-Shopify-Hmac-Sha256 does not match the body")


def shopify_calls(headers: Mapping[str, str], payload: dict[str, Any]) -> list[SourceCall]:
    """The calls one Shopify delivery stands for: [identify?, track], or [] when nothing to say.

    Raises UnsupportedTopic for topics outside TOPICS and InvalidPayload when the delivery lacks
    its webhook ID, a timestamp, or any way to name the shopper.
    """
    topic = (header(headers, "X-Shopify-Topic") or "").strip()
    event = TOPICS.get(topic)
    if event is None:
        raise UnsupportedTopic(f"Shopify topic {topic or '(none)'!r}")
    payload = as_dict(payload, "the payload")
    is_order = topic.startswith("orders/")
    if topic == "checkouts/update" and (payload.get("completed_at") or not _line_items(payload)):
        return []  # completed: orders/create reports the purchase; empty: nothing was added

    webhook_id = (header(headers, "X-Shopify-Webhook-Id") or "").strip()
    if not webhook_id:
        raise InvalidPayload("missing X-Shopify-Webhook-Id (the dedupe key)")
    when = to_utc(
        header(headers, "X-Shopify-Triggered-At")
        or payload.get("updated_at")
        or payload.get("created_at"),
        "X-Shopify-Triggered-At / updated_at / created_at",
    )
    who = _who(payload, is_order)
    track_properties = _order(payload) if is_order else _cart(payload)

    calls: list[SourceCall] = []
    traits = _traits(payload)
    if traits:
        calls.append(
            build(
                type="identify",
                **who,
                message_id=f"shopify:{webhook_id}:identify",
                timestamp=when,
                traits=traits,
            )
        )
    calls.append(
        build(
            type="track",
            event=event,
            **who,
            message_id=f"shopify:{webhook_id}:track",
            timestamp=when,
            properties=track_properties,
        )
    )
    return calls


def _who(payload: dict[str, Any], is_order: bool) -> dict[str, str | None]:
    """user_id from the customer; a guest is anonymous under the checkout (or cart) token."""
    customer = as_dict(payload.get("customer"), "customer")
    if customer.get("id") is not None:
        return {"user_id": str(customer["id"]), "anonymous_id": None}
    # A checkout's own `token` is its checkout token; an order's `token` is the order's.
    keys = ("checkout_token", "cart_token", "token") if is_order else ("token", "cart_token")
    for key in keys:
        if payload.get(key):
            return {"user_id": None, "anonymous_id": str(payload[key])}
    raise InvalidPayload("neither a customer nor a checkout or cart token names the shopper")


def _traits(payload: dict[str, Any]) -> dict[str, Any]:
    """email, first_name and last_name when known: customer first, then the billing address."""
    customer = as_dict(payload.get("customer"), "customer")
    billing = as_dict(payload.get("billing_address"), "billing_address")
    traits: dict[str, Any] = {}
    email = payload.get("email") or customer.get("email")
    if email:
        traits["email"] = email
    for name in ("first_name", "last_name"):
        value = customer.get(name) or billing.get(name)
        if value:
            traits[name] = value
    return traits


def _line_items(payload: dict[str, Any]) -> list[dict[str, Any]]:
    items = payload.get("line_items") or []
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise InvalidPayload("line_items is not a list of objects")
    return items


def _items(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """Line items as {product_id, variant_id, title, quantity, price} (IDs as strings)."""
    return [
        {
            "product_id": _id(item.get("product_id")),
            "variant_id": _id(item.get("variant_id")),
            "title": item.get("title"),
            "quantity": item.get("quantity"),
            "price": _money(item.get("price"), "line_items[].price"),
        }
        for item in _line_items(payload)
    ]


def _cart(payload: dict[str, Any]) -> dict[str, Any]:
    return {
        "items": _items(payload),
        "cart_value": _money(payload.get("total_price"), "total_price"),
        "currency": payload.get("currency"),
        "checkout_token": payload.get("token"),
        "abandoned_checkout_url": payload.get("abandoned_checkout_url"),
    }


def _order(payload: dict[str, Any]) -> dict[str, Any]:
    if payload.get("id") is None:
        raise InvalidPayload("an order without an id")
    return {
        "order_id": str(payload["id"]),
        "revenue": _money(payload.get("total_price"), "total_price"),
        "currency": payload.get("currency"),
        "items": _items(payload),
        "checkout_token": payload.get("checkout_token"),
    }


def _id(value: object) -> str | None:
    return None if value is None else str(value)


def _money(value: object, what: str) -> float:
    """Shopify sends amounts as decimal strings ("59.90"); journeys want numbers."""
    if value is None or value == "":
        return 0.0
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError as err:
            raise InvalidPayload(f"{what} is not an amount: {value!r}") from err
    raise InvalidPayload(f"{what} is not an amount: {value!r}")
