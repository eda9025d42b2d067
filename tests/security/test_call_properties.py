"""Property-based tests of what the API and the sources parse, without a server: for any JSON a
sender can write, a call model either gives a well-formed call or a ValidationError (a 422
naming the field), a batch answers every item, a source adapter maps or refuses with its own
errors (422 or "ignored"), and an email address is one mailbox or nothing. Any other exception
here would be a 500 over HTTP, which senders retry for ever.

Hypothesis, derandomized (CI reruns the same cases); the HTTP side of the same inputs is in
test_fuzz.py and test_hostile_bodies.py.
"""

from __future__ import annotations

import copy
import json
import string
from datetime import UTC
from email.utils import getaddresses
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from activities.addresses import email_address
from starter.api import validate_batch
from starter.calls import BatchCall, Call, IdentifyCall, TrackCall, parse_json
from starter.sources import (
    InvalidPayload,
    UnsupportedTopic,
    shopify_calls,
    standard_webhook_calls,
    stripe_calls,
)
from starter.sources.shopify import TOPICS
from tests.sources.payloads import load

PROPERTY = settings(max_examples=200, derandomize=True, database=None, deadline=None)

HOSTILE_TEXT = [
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-01:00",
    "0001-01-01T00:00:00Z",
    "2026-02-30T10:00:00Z",
    "2026-11-24T24:00:00Z",
    "2026-11-24T10:00:00+99:99",
    "1700000000",
    "v@x.com, a@evil.com",
    "a@evil.com\r\nBcc: b@evil.com",
    "Victim <v@x.com>",
    "inf",
    "NaN",
    "1e400",
    "",
    "track",
    "identify",
    "page",
    "m" * 300,
]
"""Values that reached a 500, or could: times outside UTC's years, several mailboxes, numbers no
float holds, names of call types, IDs past the limit."""

TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=12)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.just(10**400)
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT
    | st.sampled_from(HOSTILE_TEXT)
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=8,
)
"""Any JSON value parse_json can give (a NUL is refused before any model sees the body)."""

FIELDS = [
    "type", "userId", "anonymousId", "messageId", "timestamp", "originalTimestamp", "sentAt",
    "receivedAt", "context", "integrations", "channel", "version", "event", "properties",
    "traits", "writeKey",
]  # fmt: skip
GENUINE: list[dict[str, Any]] = [
    {"type": "track", "event": "Product Added", "userId": "u-fuzz-1", "messageId": "m-fuzz-1",
     "timestamp": "2026-11-24T10:00:00Z", "properties": {"sku": "lamp", "price": 9.5},
     "context": {"traits": {"email": "u1@example.test"}, "timezone": "Europe/Paris"}},
    {"type": "identify", "anonymousId": "a-fuzz-1",
     "traits": {"email": "a1@example.test", "plan": 1}, "context": {"ip": "203.0.113.7"}},
    {"type": "page", "userId": "u-fuzz-1", "messageId": "p-fuzz-1", "name": "Home"},
]  # fmt: skip


@st.composite
def spoiled(draw: st.DrawFn, genuine: list[Any]) -> Any:
    """A genuine value with one value somewhere, or one known field, replaced by any JSON."""
    value = copy.deepcopy(draw(st.sampled_from(genuine)))
    holders: list[tuple[Any, Any]] = []
    stack: list[Any] = [value]
    while stack:
        node = stack.pop()
        keys = list(node.keys()) if isinstance(node, dict) else range(len(node))
        for key in keys:
            holders.append((node, key))
            if isinstance(node[key], dict | list):
                stack.append(node[key])
    if isinstance(value, dict):
        holders.extend((value, name) for name in FIELDS)
    node, key = draw(st.sampled_from(holders))
    node[key] = draw(JSON)
    return value


CALLS = spoiled(GENUINE) | st.dictionaries(st.sampled_from(FIELDS) | TEXT, JSON, max_size=6)
_CALL: TypeAdapter[Any] = TypeAdapter(Call)


def check_call(call: TrackCall | IdentifyCall) -> None:
    """What the ingestor relies on, true of every call the models let through."""
    assert call.user_id and call.message_id
    assert call.when.tzinfo is not None and call.when.astimezone(UTC)
    traits = call.all_traits() if isinstance(call, IdentifyCall) else call.context_traits()
    email = traits.get("email")
    assert email in (None, "") or email_address(email) == email
    if isinstance(call, TrackCall):
        assert call.to_event().name == call.event
    json.dumps(call.model_dump(mode="json"))  # storable as JSON


@PROPERTY
@given(body=CALLS)
def test_any_call_body_is_a_well_formed_call_or_a_validation_error(body: Any) -> None:
    for model in (TrackCall, IdentifyCall):
        try:
            call = model.model_validate_json(json.dumps(body))
        except ValidationError as err:
            assert all(isinstance(e["msg"], str) for e in err.errors(include_url=False))
            continue
        check_call(call)


@PROPERTY
@given(items=st.lists(CALLS, min_size=1, max_size=4), context=JSON)
def test_any_batch_answers_every_item_and_names_each_rejected_field(
    items: list[Any], context: Any
) -> None:
    body = {"batch": items, "context": context}
    try:
        call = BatchCall.model_validate_json(json.dumps(body))
    except ValidationError:
        return  # a 422 for the whole batch (an item that is not an object, a bad context)
    answers, calls = validate_batch(call)
    assert [a.index for a in answers] == list(range(len(items)))
    assert len(calls) == sum(a.status == "accepted" for a in answers)
    for answer in answers:
        if answer.status == "rejected":
            assert answer.errors and all(e.field for e in answer.errors), answer
    for taken in calls:
        check_call(taken)


SHOPIFY = [load("shopify_checkout"), load("shopify_order")]
STRIPE = [load("stripe_subscription_created"), load("stripe_subscription_deleted")]


def mapped(calls: list[Any]) -> None:
    """A source's calls go through the API's own call model: valid, or a ValidationError."""
    for source_call in calls:
        try:
            call = _CALL.validate_python(source_call.to_segment())
        except ValidationError:
            continue
        check_call(call)


@PROPERTY
@given(
    payload=spoiled(SHOPIFY) | JSON,
    topic=st.sampled_from(sorted(TOPICS)),
    triggered=st.none() | st.sampled_from(HOSTILE_TEXT),
)
def test_a_shopify_delivery_maps_or_is_refused_with_the_sources_own_errors(
    payload: Any, topic: str, triggered: str | None
) -> None:
    headers = {"X-Shopify-Topic": topic, "X-Shopify-Webhook-Id": "wh-1"}
    if triggered is not None:
        headers["X-Shopify-Triggered-At"] = triggered
    try:
        calls = shopify_calls(headers, parse_json(json.dumps(payload)))
    except (InvalidPayload, UnsupportedTopic):
        return
    mapped(calls)


@PROPERTY
@given(payload=spoiled(STRIPE) | JSON)
def test_a_stripe_event_maps_or_is_refused_with_the_sources_own_errors(payload: Any) -> None:
    try:
        calls = stripe_calls(parse_json(json.dumps(payload)))
    except (InvalidPayload, UnsupportedTopic):
        return
    mapped(calls)


@PROPERTY
@given(payload=spoiled(GENUINE) | st.lists(spoiled(GENUINE), max_size=3) | JSON)
def test_a_standard_webhook_or_segment_body_maps_or_is_refused(payload: Any) -> None:
    headers = {"webhook-id": "msg-1", "webhook-timestamp": "1764000000"}
    try:
        calls = standard_webhook_calls(headers, parse_json(json.dumps(payload)))
    except (InvalidPayload, UnsupportedTopic):
        return
    mapped(calls)


# Email addresses ---------------------------------------------------------------------------

ADDRESS_TEXT = st.text(
    st.sampled_from(string.ascii_letters + string.digits + "@.,;:<>()[]\"'\\ \r\n\t+-_=!#é"),
    max_size=30,
)


@PROPERTY
@given(text=ADDRESS_TEXT | st.emails() | TEXT)
def test_an_accepted_address_is_exactly_one_mailbox_to_the_standard_library(text: str) -> None:
    """What a provider does with a `To`: read it as a list. An accepted value is a list of one,
    the same text, with nothing that could start a header or another recipient."""
    accepted = email_address(text)
    assert accepted in (None, text)
    if accepted is not None:
        assert getaddresses([text]) == [("", text)]
        assert not set(text) & set(',;<>()[]"\\ \r\n\t')


@PROPERTY
@given(first=st.emails(), second=st.emails(), joint=st.sampled_from([", ", ",", ";", " ", "\r\n"]))
def test_two_addresses_are_never_one(first: str, second: str, joint: str) -> None:
    assert email_address(first) == first  # the control: each alone is one address
    assert email_address(f"{first}{joint}{second}") is None
    assert email_address(f"Name <{first}>") is None


@pytest.mark.parametrize(
    "address",
    ["a@example.com", "first.last+tag@sub.example.co.uk", "o'brien@example.test",
     "x@münchen.de", "a@localhost"],
)  # fmt: skip
def test_ordinary_addresses_are_accepted(address: str) -> None:
    assert email_address(address) == address
