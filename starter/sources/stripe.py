"""Stripe events: subscription starts and cancellations, for onboarding and win-back journeys.

Stripe signs `"{t}.{body}"` and puts the timestamp in the signed header, so a captured request
goes stale after the tolerance (300 s); during a secret roll it sends one v1 per active secret,
and any one matching is enough. Stripe delivers at least once and the `evt_` ID is stable across
retries, so it is the message ID.

A subscription event names a Stripe customer (cus_...), not our user and not an email. The
mapping uses `metadata.user_id` when the integration set it; otherwise user_id is None and the
call always carries `stripe_customer_id`, which the API layer resolves to a user (e.g. one an
identify call linked through the trait `stripe_customer_id`). Resolution needs the store, so
it does not belong in this pure adapter.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starter.sources.errors import InvalidPayload, InvalidSignature, UnsupportedTopic
from starter.sources.models import SourceCall, as_dict, build, to_utc
from starter.sources.signing import (
    TOLERANCE,
    any_match,
    check_fresh,
    required_header,
    stripe_v1,
    unix_seconds,
)

__all__ = ["EVENTS", "stripe_calls", "verify_stripe"]

EVENTS = {
    "customer.subscription.created": "Subscription Started",
    "customer.subscription.deleted": "Subscription Cancelled",
}
"""The event types we map, to our event names; any other type raises UnsupportedTopic."""


def verify_stripe(
    headers: Mapping[str, str],
    body: bytes,
    secret: str,
    *,
    tolerance: int = TOLERANCE,
    now: float | None = None,
) -> None:
    """Check Stripe-Signature (t=...,v1=...[,v1=...]); raise a SignatureError if it fails.

    The signature is checked before the age, so StaleSignature always means "genuine but old"
    (a replay or a clock problem) and never hides a forgery. Schemes other than v1 (v0 is
    Stripe's test-mode scheme) are ignored.
    """
    value = required_header(headers, "Stripe-Signature")
    timestamps: list[str] = []
    signatures: list[str] = []
    for part in value.split(","):
        key, _, item = part.partition("=")
        if key.strip() == "t":
            timestamps.append(item.strip())
        elif key.strip() == "v1":
            signatures.append(item.strip())
    timestamp = unix_seconds(timestamps[0]) if len(timestamps) == 1 else None
    if timestamp is None:
        raise InvalidSignature("Stripe-Signature needs exactly one numeric t=")
    if not signatures:
        raise InvalidSignature("Stripe-Signature has no v1= signature")
    if not any_match(signatures, stripe_v1(body, secret, timestamp)):
        raise InvalidSignature("no v1 signature in Stripe-Signature matches the body")
    check_fresh(timestamp, tolerance, now)


def stripe_calls(payload: dict[str, Any]) -> list[SourceCall]:
    """The track call one Stripe event stands for.

    customer.subscription.created -> "Subscription Started"; customer.subscription.deleted ->
    "Subscription Cancelled". message_id is the evt_ ID and timestamp the event's `created`.
    user_id is `data.object.metadata.user_id`, or None: properties always carry
    `stripe_customer_id` (plus `subscription_id`, `plan` and, for cancellations,
    `cancellation_reason` when Stripe gives one), and the API layer must resolve the customer
    to a user before ingesting a call whose user_id is None.

    Raises UnsupportedTopic for other event types and InvalidPayload for a malformed event.
    """
    payload = as_dict(payload, "the payload")
    kind = payload.get("type")
    event = EVENTS.get(kind) if isinstance(kind, str) else None
    if event is None:
        raise UnsupportedTopic(f"Stripe event type {kind!r}")
    event_id = payload.get("id")
    if not isinstance(event_id, str) or not event_id:
        raise InvalidPayload("a Stripe event without an id")
    subscription = as_dict(as_dict(payload.get("data"), "data").get("object"), "data.object")
    customer = _customer_id(subscription.get("customer"))
    metadata = as_dict(subscription.get("metadata"), "data.object.metadata")
    user_id = metadata.get("user_id")

    properties: dict[str, Any] = {
        "stripe_customer_id": customer,
        "subscription_id": subscription.get("id"),
        "plan": _plan(subscription),
    }
    if kind == "customer.subscription.deleted":
        details = as_dict(subscription.get("cancellation_details"), "cancellation_details")
        if details.get("reason"):
            properties["cancellation_reason"] = details["reason"]
    return [
        build(
            type="track",
            event=event,
            user_id=str(user_id) if user_id else None,
            message_id=event_id,
            timestamp=to_utc(payload.get("created"), "created"),
            properties=properties,
        )
    ]


def _customer_id(customer: object) -> str:
    """The cus_ ID; webhooks send it as a string, an expanded object carries it as `id`."""
    if isinstance(customer, dict):
        customer = customer.get("id")
    if not isinstance(customer, str) or not customer:
        raise InvalidPayload("a subscription without a customer")
    return customer


def _plan(subscription: dict[str, Any]) -> str | None:
    """The first item's price ID, else the legacy `plan.id` (None when neither is present)."""
    items = as_dict(subscription.get("items"), "items").get("data") or []
    first = items[0] if isinstance(items, list) and items else {}
    for source in (as_dict(first, "items.data[0]").get("price"), subscription.get("plan")):
        plan_id = as_dict(source, "price").get("id")
        if plan_id:
            return str(plan_id)
    return None
