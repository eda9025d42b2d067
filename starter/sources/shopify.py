"""Shopify webhooks: checkouts and orders as the cart-recovery journey's events.

Shopify has no "abandoned checkout" topic: a checkout that changes and never gets a
`completed_at` is the signal, and the journey's timer decides when it counts as abandoned.
checkouts/create is the moment a shopper typed their email and may leave ("Checkout Started"),
each checkouts/update a change ("Cart Updated"); both carry the whole cart as Segment's
e-commerce spec does, `products[]` (name, variant, quantity, price, image), with the checkout's
recovery link as `cart_url`, and both start or update cart recovery. orders/create is the
purchase ("Order Completed", the journey's goal). A checkouts/update that carries `completed_at`
yields nothing: the order that follows reports the purchase, and counting both would double it.

Every mapped delivery first identifies the shopper (email and name), so the journey has someone
to write to. A guest has no customer ID; the checkout token is their anonymous ID, and an
order's `checkout_token` is the same value, so a guest's order reaches their checkout's journey.

Replays: Shopify's HMAC covers the body only. X-Shopify-Topic, X-Shopify-Webhook-Id and
X-Shopify-Triggered-At are outside it, so whoever captured one delivery can post its body again
under any topic with a fresh webhook ID. Two rules make that worthless:

- The message ID is a digest of the body (its canonical JSON) and the topic, not the webhook
  ID: Shopify's own retries and any replay dedupe, whatever their webhook ID, so one body counts
  at most once per topic (the topic stays in the key because checkouts/create and an unchanged
  checkouts/update may carry the same body, and the update is the cart change journeys use).
- The body must have the shape of its topic's resource (`ShopifyCheckout`, `ShopifyOrder`): a
  captured checkout posted as orders/create is refused (InvalidPayload, 422), never a purchase.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from activities.addresses import email_address
from activities.store import CatalogProduct
from starter.sources.errors import InvalidPayload, InvalidSignature, UnsupportedTopic
from starter.sources.models import SourceCall, as_dict, build, header, to_utc
from starter.sources.signing import any_match, required_header, sign_shopify

__all__ = [
    "PRODUCT_TOPICS",
    "TOPICS",
    "ShopifyCheckout",
    "ShopifyOrder",
    "body_digest",
    "shopify_calls",
    "shopify_product",
    "verify_shopify",
]

PRODUCT_TOPICS = ("products/create", "products/update")
"""Topics that keep the product catalog current (no event: see `shopify_product`)."""

TOPICS = {
    "checkouts/create": "Checkout Started",
    "checkouts/update": "Cart Updated",
    "orders/create": "Order Completed",
}
"""The topics we map, to our event names; any other topic raises UnsupportedTopic."""

ORDER_ONLY = ("order_number", "financial_status")
"""Fields every Shopify Order has and its (abandoned) Checkout resource never has."""


class ShopifyCheckout(BaseModel):
    """What makes a body a checkout (checkouts/*): its token and recovery URL, no order fields."""

    model_config = ConfigDict(extra="allow")

    token: str = Field(min_length=1)
    abandoned_checkout_url: str | None

    @model_validator(mode="before")
    @classmethod
    def _not_an_order(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for name in ORDER_ONLY:
                if name in data:
                    raise ValueError(f"{name} is an order's field, not a checkout's")
        return data


class ShopifyOrder(BaseModel):
    """What makes a body an order (orders/*): its ID and order number, no recovery URL."""

    model_config = ConfigDict(extra="allow")

    id: int | str
    order_number: int

    @model_validator(mode="before")
    @classmethod
    def _not_a_checkout(cls, data: Any) -> Any:
        if isinstance(data, dict) and "abandoned_checkout_url" in data:
            raise ValueError("abandoned_checkout_url is a checkout's field, not an order's")
        return data


def _fits_topic(topic: str, payload: dict[str, Any]) -> None:
    """InvalidPayload, naming the field, unless the body has the shape of the topic's resource."""
    shape, resource = (
        (ShopifyOrder, "an order")
        if topic.startswith("orders/")
        else (ShopifyCheckout, "a checkout")
    )
    try:
        shape.model_validate(payload)
    except ValidationError as err:
        first = err.errors(include_url=False)[0]
        reason = first["msg"].removeprefix("Value error, ")
        if first["loc"]:
            reason = f"{'.'.join(str(p) for p in first['loc'])}: {reason}"
        raise InvalidPayload(
            f"{topic} sends {resource}, and this body is not one: {reason}"
        ) from err


def body_digest(payload: dict[str, Any]) -> str:
    """SHA-256 of the payload's canonical JSON: the same body always gives the same digest."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


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

    Message IDs are "shopify:<topic>:<body digest>:<identify|track>", so the same body under
    the same topic is one event however often it is posted. Raises UnsupportedTopic for topics
    outside TOPICS and InvalidPayload when the body is not its topic's resource, or lacks a
    timestamp or any way to name the shopper.
    """
    topic = (header(headers, "X-Shopify-Topic") or "").strip()
    event = TOPICS.get(topic)
    if event is None:
        raise UnsupportedTopic(f"Shopify topic {topic or '(none)'!r}")
    payload = as_dict(payload, "the payload")
    _fits_topic(topic, payload)
    is_order = topic.startswith("orders/")
    if topic == "checkouts/update" and (payload.get("completed_at") or not _line_items(payload)):
        return []  # completed: orders/create reports the purchase; empty: nothing was added

    key = f"shopify:{topic}:{body_digest(payload)}"
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
                message_id=f"{key}:identify",
                timestamp=when,
                traits=traits,
            )
        )
    calls.append(
        build(
            type="track",
            event=event,
            **who,
            message_id=f"{key}:track",
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
    """email, first_name and last_name when known: customer first, then the billing address.

    An email that is not one address (`email_address`) is left out rather than refusing the
    delivery: the checkout still counts, and nobody is mailed at what it says."""
    customer = as_dict(payload.get("customer"), "customer")
    billing = as_dict(payload.get("billing_address"), "billing_address")
    traits: dict[str, Any] = {}
    email = email_address(payload.get("email") or customer.get("email"))
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
    """Line items as Segment's products: product_id, variant_id, sku, name, variant, quantity,
    price, image_url when Shopify sends one (IDs as strings)."""
    products = []
    for item in _line_items(payload):
        line = {
            "product_id": _id(item.get("product_id")),
            "variant_id": _id(item.get("variant_id")),
            "sku": item.get("sku") or None,
            "name": item.get("title"),
            "variant": item.get("variant_title") or None,
            "quantity": item.get("quantity"),
            "price": _money(item.get("price"), "line_items[].price"),
            "currency": payload.get("currency"),
            "image_url": item.get("image_url") or _image(item.get("image")),
        }
        products.append({key: value for key, value in line.items() if value is not None})
    return products


def _image(image: object) -> str | None:
    """A line item's image: a URL, or an object with `src` (Shopify's image resource)."""
    if isinstance(image, str):
        return image or None
    src = image.get("src") if isinstance(image, dict) else None
    return src if isinstance(src, str) else None


def _cart(payload: dict[str, Any]) -> dict[str, Any]:
    return {
        "products": _items(payload),
        "cart_value": _money(payload.get("total_price"), "total_price"),
        "currency": payload.get("currency"),
        "checkout_token": payload.get("token"),
        "cart_url": payload.get("abandoned_checkout_url"),
    }


def _order(payload: dict[str, Any]) -> dict[str, Any]:
    if payload.get("id") is None:
        raise InvalidPayload("an order without an id")
    return {
        "order_id": str(payload["id"]),
        "revenue": _money(payload.get("total_price"), "total_price"),
        "currency": payload.get("currency"),
        "products": _items(payload),
        "checkout_token": payload.get("checkout_token"),
    }


def _id(value: object) -> str | None:
    return None if value is None else str(value)


def _money(value: object, what: str) -> float:
    """Shopify sends amounts as decimal strings ("59.90"); journeys want numbers, finite ones
    ("inf" and "1e400" are floats to Python, and no database stores them)."""
    if value is None or value == "":
        return 0.0
    amount: float | None = None
    if isinstance(value, int | float | str) and not isinstance(value, bool):
        try:
            amount = float(value)
        except (ValueError, OverflowError):  # not a number; an integer past any float
            amount = None
    if amount is None or not math.isfinite(amount):
        raise InvalidPayload(f"{what} is not an amount")
    return amount


def shopify_product(headers: Mapping[str, str], payload: dict[str, Any]) -> CatalogProduct:
    """A products/create or products/update body as the catalog's entry: title, the storefront
    link (https://<shop domain>/products/<handle>), the first image, the lowest variant price.
    Ratings and reviews are not Shopify's to send; a review app, or PUT /v1/catalog, adds them.
    """
    payload = as_dict(payload, "the payload")
    if payload.get("id") is None or not payload.get("title"):
        raise InvalidPayload("a product needs its id and title")
    domain = (header(headers, "X-Shopify-Shop-Domain") or "").strip()
    handle = payload.get("handle")
    url = f"https://{domain}/products/{handle}" if domain and isinstance(handle, str) else None
    image = as_dict(payload.get("image"), "image")
    images = payload.get("images") if isinstance(payload.get("images"), list) else []
    first = image or (images[0] if images and isinstance(images[0], dict) else {})
    listed = payload.get("variants")
    variants = listed if isinstance(listed, list) else []
    prices = [
        _money(v.get("price"), "variants[].price")
        for v in variants
        if isinstance(v, dict) and v.get("price") not in (None, "")
    ]
    return CatalogProduct(
        product_id=str(payload["id"]),
        name=str(payload["title"])[:500],
        url=url,
        image_url=_image(first) if first else None,
        price=min(prices) if prices else None,
    )
