"""Stripe events: trials, upgrades, cancellations and first payments, as the subscription
journeys' events (trial_expiring, upgrade_prompt, win_back), with revenue where money moved.

Stripe signs `"{t}.{body}"` and puts the timestamp in the signed header, so a captured request
goes stale after the tolerance (300 s); during a secret roll it sends one v1 per active secret,
and any one matching is enough. Stripe delivers at least once and the `evt_` ID is stable across
retries, so it is the message ID.

What each event type becomes (EVENTS); anything else, or a mapped type that says none of these
things (a renewal, a downgrade, a card change), raises UnsupportedTopic, which the API answers
200 "ignored" so that Stripe stops retrying it:

- customer.subscription.created with `status: trialing` -> "Trial Started" (`trial_end` in
  Unix seconds, `plan`, `price`). A subscription created without a trial is not started until
  it is paid: its first invoice says so, with the amount.
- customer.subscription.updated whose items moved to a higher price than
  `data.previous_attributes.items` had (compared per day, so monthly to a cheaper-per-month
  yearly price is not an upgrade) -> "Plan Upgraded" (`plan`, `previous_plan`, `price`,
  `previous_price`, and `revenue`: the new recurring price), when the subscription is active
  (a change of plan during a trial waits for the trial's end). From `status` trialing to active
  (the trial became a paid subscription) -> "Subscription Started" with the plan's price as
  `revenue`, `from_trial: true`.
- customer.subscription.deleted -> "Subscription Cancelled" (`cancellation_reason`).
- invoice.paid for a subscription's first invoice (`billing_reason: subscription_create`) with
  money paid -> "Subscription Started" with `revenue` = `amount_paid`. Renewals, prorations and
  one-off invoices are no journey's goal (and a renewal would count as a dormant user's return).

Amounts: Stripe sends integers in the currency's smallest unit; journeys get the major unit
(`revenue` 49.0 for 4900 USD cents, 4900.0 for 4900 JPY, 4.9 for 4900 KWD fils), per Stripe's
zero- and three-decimal lists. `currency` is the ISO code in capitals, as the Segment spec has it.

A Stripe event names a customer (cus_...), not our user and not an email. The mapping uses
`metadata.user_id` when the integration set it (on the subscription; for an invoice, its own
metadata, then its subscription's, `subscription_details` or, from API version 2025-03-31,
`parent.subscription_details`); otherwise user_id is None and the call always carries
`stripe_customer_id`, which the API layer resolves to a user (e.g. one an identify call linked
through the trait `stripe_customer_id`). Resolution needs the store, so it does not belong in
this pure adapter.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, DecimalException
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

__all__ = ["EVENTS", "major_units", "stripe_calls", "verify_stripe"]

EVENTS: dict[str, tuple[str, ...]] = {
    "customer.subscription.created": ("Trial Started",),
    "customer.subscription.updated": ("Plan Upgraded", "Subscription Started"),
    "customer.subscription.deleted": ("Subscription Cancelled",),
    "invoice.paid": ("Subscription Started",),
}
"""The event types we map, to the event names each may become; other types (and mapped ones
that are none of them) raise UnsupportedTopic."""

ZERO_DECIMAL = frozenset(
    {"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga"}
    | {"pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf"}
)
"""Stripe's zero-decimal currencies: the amount is the major unit (500 JPY is 500)."""
THREE_DECIMAL = frozenset({"bhd", "jod", "kwd", "omr", "tnd"})
"""Stripe's three-decimal currencies (5.124 KWD is 5124). Every other currency has two, ISK,
HUF and TWD included: Stripe keeps them two-decimal in the API."""

_DAYS = {"day": Decimal(1), "week": Decimal(7), "month": Decimal(365) / 12, "year": Decimal(365)}
"""Days per billing interval, to compare prices billed over different intervals."""
_CURRENCY = re.compile(r"[A-Za-z]{3}")
_MAX_DIGITS = 30
"""Digits an amount may have (Stripe's are 8 at most); more is not an amount Stripe sends."""


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
    """The track call one Stripe event stands for (see the module's docstring for which).

    message_id is the evt_ ID and timestamp the event's `created`. user_id is the object's
    `metadata.user_id`, or None: properties always carry `stripe_customer_id` (and the
    subscription's `subscription_id` and `plan`, its first price ID), and the API layer must
    resolve the customer to a user before ingesting a call whose user_id is None.

    Raises UnsupportedTopic for an event no journey uses and InvalidPayload for a malformed one.
    """
    payload = as_dict(payload, "the payload")
    kind = payload.get("type")
    mapping = _MAPPINGS.get(kind) if isinstance(kind, str) else None
    if mapping is None:
        raise UnsupportedTopic(f"Stripe event type {kind!r}")
    event_id = payload.get("id")
    if not isinstance(event_id, str) or not event_id:
        raise InvalidPayload("a Stripe event without an id")
    data = as_dict(payload.get("data"), "data")
    thing = as_dict(data.get("object"), "data.object")
    customer = _customer_id(thing.get("customer"))
    event, user_id, properties = mapping(
        thing, as_dict(data.get("previous_attributes"), "data.previous_attributes")
    )
    return [
        build(
            type="track",
            event=event,
            user_id=user_id,
            message_id=event_id,
            timestamp=to_utc(payload.get("created"), "created"),
            properties={"stripe_customer_id": customer, **properties},
        )
    ]


Mapped = tuple[str, str | None, dict[str, Any]]
"""Our event name, the user from metadata (or None), and the call's properties."""


def _subscription_created(subscription: dict[str, Any], _: dict[str, Any]) -> Mapped:
    status = subscription.get("status")
    if status != "trialing":
        raise UnsupportedTopic(
            f"a subscription created {status!r}, not trialing: its first paid invoice "
            "(invoice.paid) starts it"
        )
    properties = {**_subscription(subscription), **_prices(_current(subscription)).described()}
    for key in ("trial_start", "trial_end"):
        if subscription.get(key) is not None:
            properties[key] = int(to_utc(subscription[key], key).timestamp())
    return "Trial Started", _user(subscription.get("metadata")), properties


def _subscription_updated(subscription: dict[str, Any], previous: dict[str, Any]) -> Mapped:
    user = _user(subscription.get("metadata"))
    now = _prices(_current(subscription))
    if previous.get("status") == "trialing" and subscription.get("status") == "active":
        properties = {**_subscription(subscription), **now.described(), "from_trial": True}
        if "price" in properties:
            properties["revenue"] = properties["price"]
        return "Subscription Started", user, properties
    before = _prices(_previous(subscription, previous))
    if not before.ids or before.ids == now.ids:
        raise UnsupportedTopic("a subscription updated without a change of price")
    if subscription.get("status") != "active":  # a trial's end (or payment) decides, not this
        raise UnsupportedTopic("a change of price on a subscription not active (trialing, unpaid)")
    if now.per_day is None or before.per_day is None or now.currency != before.currency:
        raise UnsupportedTopic("a subscription's prices changed, but cannot be compared")
    if now.per_day <= before.per_day:
        raise UnsupportedTopic("a subscription moved to a price no higher than before")
    properties = {**_subscription(subscription), **now.described()}
    was = before.described()
    properties["previous_plan"] = was["plan"]
    if "price" in was:
        properties["previous_price"] = was["price"]
    if "price" in properties:  # the new recurring price is what the upgrade is worth
        properties["revenue"] = properties["price"]
    return "Plan Upgraded", user, properties


def _subscription_deleted(subscription: dict[str, Any], _: dict[str, Any]) -> Mapped:
    properties = _subscription(subscription)
    details = as_dict(subscription.get("cancellation_details"), "cancellation_details")
    if details.get("reason"):
        properties["cancellation_reason"] = details["reason"]
    return "Subscription Cancelled", _user(subscription.get("metadata")), properties


def _invoice_paid(invoice: dict[str, Any], _: dict[str, Any]) -> Mapped:
    reason = invoice.get("billing_reason")
    if reason != "subscription_create":
        raise UnsupportedTopic(
            f"invoice.paid for {reason!r}: only a subscription's first invoice starts it"
        )
    amount_paid = invoice.get("amount_paid")
    if isinstance(amount_paid, str):  # an integer in the smallest unit, never a string
        raise InvalidPayload("amount_paid is not an amount")
    paid = _minor(amount_paid, "amount_paid")
    if not paid:
        raise UnsupportedTopic("invoice.paid for nothing (a trial's or a free first invoice)")
    currency = _currency(invoice.get("currency"), "currency")
    if currency is None:
        raise InvalidPayload("an invoice without a currency")
    details = as_dict(invoice.get("subscription_details"), "subscription_details")
    parent = as_dict(
        as_dict(invoice.get("parent"), "parent").get("subscription_details"),
        "parent.subscription_details",
    )
    user = _user(invoice.get("metadata"), details.get("metadata"), parent.get("metadata"))
    properties: dict[str, Any] = {
        "subscription_id": _id(invoice.get("subscription")) or _id(parent.get("subscription")),
        "plan": _invoice_plan(invoice),
        "invoice_id": _id(invoice.get("id")),
        "revenue": major_units(paid, currency),
        "currency": currency.upper(),
    }
    return "Subscription Started", user, properties


_MAPPINGS: dict[str, Callable[[dict[str, Any], dict[str, Any]], Mapped]] = {
    "customer.subscription.created": _subscription_created,
    "customer.subscription.updated": _subscription_updated,
    "customer.subscription.deleted": _subscription_deleted,
    "invoice.paid": _invoice_paid,
}


# Amounts -----------------------------------------------------------------------------------


def major_units(amount: int | Decimal, currency: str) -> float:
    """An amount in `currency`'s smallest unit (as Stripe sends it) in its major unit."""
    code = currency.lower()
    places = 0 if code in ZERO_DECIMAL else 3 if code in THREE_DECIMAL else 2
    try:
        value = float(Decimal(amount).scaleb(-places))
    except (DecimalException, OverflowError) as err:
        raise InvalidPayload("an amount too large to be one") from err
    if not math.isfinite(value):
        raise InvalidPayload("an amount too large to be one")
    return value


def _minor(value: object, what: str) -> Decimal | None:
    """A non-negative amount in the smallest unit: an integer, or (Stripe's `*_decimal`
    fields) a decimal string; None when absent."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise InvalidPayload(f"{what} is not an amount")
    if isinstance(value, int):
        if not 0 <= value < 10**_MAX_DIGITS:
            raise InvalidPayload(f"{what} is not an amount")
        return Decimal(value)
    if len(value) > _MAX_DIGITS or not re.fullmatch(r"[0-9]+(\.[0-9]+)?", value):
        raise InvalidPayload(f"{what} is not an amount")
    return Decimal(value)


def _currency(value: object, what: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _CURRENCY.fullmatch(value):
        raise InvalidPayload(f"{what} is not a currency code")
    return value.lower()


@dataclass(frozen=True)
class _Line:
    """One subscription item: its price, and what it costs per billing interval."""

    price_id: str | None
    amount: Decimal | None  # smallest unit, unit amount times quantity; None if usage-based
    currency: str | None
    interval: str | None
    interval_count: int


@dataclass(frozen=True)
class _Prices:
    """A subscription's items, summed: what it costs and how that compares with another."""

    lines: tuple[_Line, ...]

    @property
    def ids(self) -> tuple[str | None, ...]:
        return tuple(sorted((line.price_id for line in self.lines), key=str))

    @property
    def currency(self) -> str | None:
        currencies = {line.currency for line in self.lines}
        return currencies.pop() if len(currencies) == 1 else None

    @property
    def amount(self) -> Decimal | None:
        """Per billing interval (of the items', if they share one), smallest unit."""
        if not self.lines or any(line.amount is None for line in self.lines):
            return None
        return sum((line.amount for line in self.lines if line.amount is not None), Decimal(0))

    @property
    def per_day(self) -> Decimal | None:
        """The recurring cost per day, to compare prices billed monthly and yearly."""
        if self.amount is None or self.currency is None:
            return None
        total = Decimal(0)
        for line in self.lines:
            days = _DAYS.get(line.interval or "")
            if days is None or line.amount is None or line.interval_count < 1:
                return None
            total += line.amount / (days * line.interval_count)
        return total

    def described(self) -> dict[str, Any]:
        """`plan` (the first price ID), and `price` per `interval` in major units with its
        `currency`, when they can be known."""
        if not self.lines:
            return {"plan": None}
        first = self.lines[0]
        described: dict[str, Any] = {"plan": first.price_id}
        intervals = {(line.interval, line.interval_count) for line in self.lines}
        if self.amount is not None and self.currency is not None and len(intervals) == 1:
            described["price"] = major_units(self.amount, self.currency)
            described["currency"] = self.currency.upper()
            described["interval"] = first.interval
            if first.interval_count != 1:
                described["interval_count"] = first.interval_count
        return described


def _prices(items: list[dict[str, Any]]) -> _Prices:
    return _Prices(tuple(_line(item) for item in items))


def _line(item: dict[str, Any]) -> _Line:
    """A subscription item, from its `price` (or the legacy `plan`, which says `amount`)."""
    price = as_dict(item.get("price"), "price") or as_dict(item.get("plan"), "plan")
    recurring = as_dict(price.get("recurring"), "price.recurring")
    price_id = price.get("id")
    unit = _minor(price.get("unit_amount", price.get("amount")), "unit_amount")
    if unit is None:
        decimal = price.get("unit_amount_decimal", price.get("amount_decimal"))
        unit = _minor(decimal, "unit_amount_decimal")
    quantity = item.get("quantity", 1)
    if quantity is None:
        quantity = 1
    if isinstance(quantity, bool) or not isinstance(quantity, int) or not 0 <= quantity < 10**9:
        raise InvalidPayload("quantity is not a count")
    usage = recurring.get("usage_type", price.get("usage_type"))
    count = recurring.get("interval_count", price.get("interval_count")) or 1
    if isinstance(count, bool) or not isinstance(count, int) or not 0 < count < 10**6:
        raise InvalidPayload("interval_count is not a count")
    interval = recurring.get("interval", price.get("interval"))
    return _Line(
        price_id=str(price_id) if price_id else None,
        amount=None if unit is None or usage == "metered" else unit * quantity,
        currency=_currency(price.get("currency"), "price.currency"),
        interval=interval if isinstance(interval, str) else None,
        interval_count=count,
    )


def _current(subscription: dict[str, Any]) -> list[dict[str, Any]]:
    """The subscription's items now (or its legacy single `plan`)."""
    return _items(subscription.get("items"), subscription.get("plan"), subscription.get("quantity"))


def _previous(subscription: dict[str, Any], previous: dict[str, Any]) -> list[dict[str, Any]]:
    """The items before the update: `previous_attributes` holds the whole `items` list when any
    item changed (Stripe's rule for arrays), or only a legacy `plan`; [] when neither changed."""
    if "items" in previous:
        return _items(previous["items"], None, None)
    if "plan" in previous:
        quantity = previous.get("quantity", subscription.get("quantity"))
        return _items(None, previous["plan"], quantity)
    return []


def _items(items: object, plan: object, quantity: object) -> list[dict[str, Any]]:
    data = as_dict(items, "items").get("data")
    if data is None:
        data = []
    if not isinstance(data, list):
        raise InvalidPayload("items.data is not a list")
    if data:
        return [as_dict(item, "items.data[]") for item in data]
    if as_dict(plan, "plan"):
        return [{"plan": plan, "quantity": quantity}]
    return []


# Who and what ------------------------------------------------------------------------------


def _subscription(subscription: dict[str, Any]) -> dict[str, Any]:
    """What every subscription event says: the subscription and its plan (first price ID)."""
    lines = _prices(_current(subscription)).lines
    return {
        "subscription_id": _id(subscription.get("id")),
        "plan": lines[0].price_id if lines else None,
    }


def _invoice_plan(invoice: dict[str, Any]) -> str | None:
    """The first line's price ID: `price.id` (or the legacy `plan.id`) before API version
    2025-03-31, `pricing.price_details.price` since."""
    lines = as_dict(invoice.get("lines"), "lines").get("data") or []
    first = as_dict(lines[0] if isinstance(lines, list) and lines else None, "lines.data[0]")
    pricing = as_dict(first.get("pricing"), "lines.data[0].pricing")
    for source in (
        as_dict(first.get("price"), "price").get("id"),
        as_dict(first.get("plan"), "plan").get("id"),
        as_dict(pricing.get("price_details"), "price_details").get("price"),
    ):
        if source:
            return _id(source)
    return None


def _user(*metadata: object) -> str | None:
    """`user_id` from the first metadata that has one."""
    for each in metadata:
        user_id = as_dict(each, "metadata").get("user_id")
        if user_id:
            return str(user_id)
    return None


def _id(value: object) -> str | None:
    """An object's ID: webhooks send a string; an expanded object carries it as `id`."""
    if isinstance(value, dict):
        value = value.get("id")
    return str(value) if isinstance(value, str | int) and not isinstance(value, bool) else None


def _customer_id(customer: object) -> str:
    """The cus_ ID; webhooks send it as a string, an expanded object carries it as `id`."""
    if isinstance(customer, dict):
        customer = customer.get("id")
    if not isinstance(customer, str) or not customer:
        raise InvalidPayload("a Stripe object without a customer")
    return customer
