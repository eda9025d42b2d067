"""Each HTTP provider's real client against a loopback stand-in that keeps the vendor's contract.

What is asserted is what the send activity relies on: the request the vendor documents, and
each answer read as taken, retry later (with Retry-After), maybe taken (timeout), or refused
for good (suppressing the address only when the address is the problem).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from email.utils import formatdate
from typing import Any

import pytest

from activities.providers import (
    AmbiguousProviderError,
    Delivery,
    PermanentProviderError,
    RetryableProviderError,
)
from tests.providers.conftest import Vendor
from tests.providers.servers import CONTRACTS, KEY, UNSUBSCRIBE, Received, free_port, message

PROVIDERS = CONTRACTS
"""Kept under this name for tests/delivery, which drives journeys against these stand-ins."""
HTTP = sorted(CONTRACTS)
each_vendor = pytest.mark.parametrize("vendor", HTTP, indirect=True)
MESSAGE = message()


def send(vendor: Vendor, **settings: Any) -> Delivery:
    return vendor.provider(**settings).send(MESSAGE)


# Taken -------------------------------------------------------------------------------------


def sendgrid_shape(request: Received, delivery: Delivery) -> None:
    body = request.json()
    assert request.headers["authorization"] == f"Bearer {KEY}"
    [personalization] = body["personalizations"]
    assert personalization["to"] == [{"email": "ada@example.test"}]
    assert personalization["custom_args"]["idempotency_key"] == MESSAGE.idempotency_key
    assert body["from"] == {"email": "shop@example.test", "name": "Example Shop"}
    assert body["subject"] == MESSAGE.subject
    assert body["content"] == [
        {"type": "text/plain", "value": MESSAGE.text},
        {"type": "text/html", "value": MESSAGE.html},
    ]
    assert body["headers"] == UNSUBSCRIBE
    assert delivery.provider_message_id == "sg-1"  # from the X-Message-Id header


def postmark_shape(request: Received, delivery: Delivery) -> None:
    body = request.json()
    assert request.headers["x-postmark-server-token"] == KEY
    assert body["To"] == "ada@example.test"
    assert body["From"] == "Example Shop <shop@example.test>"
    assert (body["Subject"], body["HtmlBody"], body["TextBody"]) == (
        MESSAGE.subject, MESSAGE.html, MESSAGE.text
    )  # fmt: skip
    assert body["Headers"] == [{"Name": k, "Value": v} for k, v in UNSUBSCRIBE.items()]
    assert body["MessageStream"] == "broadcast"
    assert body["Metadata"]["idempotency_key"] == MESSAGE.idempotency_key
    assert delivery.provider_message_id == "pm-1"


def mailchimp_shape(request: Received, delivery: Delivery) -> None:
    body = request.json()
    assert body["key"] == KEY  # Mandrill takes the key in the body, not a header
    mail = body["message"]
    assert mail["to"] == [{"email": "ada@example.test", "type": "to"}]
    assert (mail["subject"], mail["html"], mail["text"]) == (
        MESSAGE.subject, MESSAGE.html, MESSAGE.text
    )  # fmt: skip
    assert (mail["from_email"], mail["from_name"]) == ("shop@example.test", "Example Shop")
    assert mail["headers"] == UNSUBSCRIBE
    assert mail["metadata"]["idempotency_key"] == MESSAGE.idempotency_key
    assert delivery.provider_message_id == "mc-1"


def klaviyo_shape(request: Received, delivery: Delivery) -> None:
    """Klaviyo sends the mail from its own flow templates, so no HTML or headers go over:
    the event carries the context, and unique_id makes a repeat harmless."""
    assert request.headers["authorization"] == f"Klaviyo-API-Key {KEY}"
    assert request.headers["revision"] == "2024-10-15"
    assert request.headers["content-type"] == "application/vnd.api+json"
    data = request.json()["data"]
    assert data["type"] == "event"
    attributes = data["attributes"]
    assert attributes["unique_id"] == MESSAGE.idempotency_key
    assert attributes["metric"]["data"] == {
        "type": "metric",
        "attributes": {"name": "Journey cart_recovery reminder"},
    }
    profile = attributes["profile"]["data"]
    assert profile["type"] == "profile"
    assert profile["attributes"] == {"email": "ada@example.test", "external_id": "u-1"}
    assert attributes["properties"] == {**MESSAGE.properties, "subject": MESSAGE.subject}
    assert delivery.provider_message_id == MESSAGE.idempotency_key


SHAPES: dict[str, Callable[[Received, Delivery], None]] = {
    "sendgrid": sendgrid_shape,
    "postmark": postmark_shape,
    "mailchimp": mailchimp_shape,
    "klaviyo": klaviyo_shape,
}


@each_vendor
def test_a_message_is_taken_and_sent_in_the_vendors_documented_shape(vendor: Vendor) -> None:
    vendor.answer(*CONTRACTS[vendor.name].ok)
    delivery = send(vendor)
    assert delivery.provider == vendor.name
    [request] = vendor.script.seen
    assert (request.method, request.path) == ("POST", CONTRACTS[vendor.name].path)
    assert "idempotency-key" not in request.headers  # none of these APIs documents one
    SHAPES[vendor.name](request, delivery)


@pytest.mark.parametrize("vendor", ["klaviyo"], indirect=True)
def test_render_context_values_json_lacks_are_sent_not_fatal(vendor: Vendor) -> None:
    vendor.answer(*CONTRACTS["klaviyo"].ok)
    at = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
    vendor.provider().send(message(properties={"abandoned_at": at, "total": Decimal("49.50")}))
    properties = vendor.script.seen[0].json()["data"]["attributes"]["properties"]
    assert (properties["abandoned_at"], properties["total"]) == ("2026-11-25T08:00:00Z", "49.50")


@each_vendor
def test_only_klaviyo_dedupes_on_our_key(vendor: Vendor) -> None:
    assert vendor.provider().idempotent is (vendor.name == "klaviyo")


# Retry later -------------------------------------------------------------------------------

RATE_LIMITED: dict[str, Any] = {
    "sendgrid": {"errors": [{"field": None, "message": "too many requests"}]},
    "postmark": {"ErrorCode": 0, "Message": "Rate limit exceeded"},
    "mailchimp": "",
    "klaviyo": {"errors": [{"status": 429, "code": "throttled", "title": "Throttled",
                            "detail": "Request was throttled. Expected available in 7 seconds."}]},
}  # fmt: skip
SERVER_ERROR: dict[str, Any] = {
    "sendgrid": {"errors": [{"field": None, "message": "internal error"}]},
    "postmark": {"ErrorCode": 500, "Message": "Internal Server Error"},
    "mailchimp": {"status": "error", "code": -1, "name": "GeneralError", "message": "oops"},
    "klaviyo": {"errors": [{"status": 500, "code": "error", "detail": "A server error"}]},
}


@each_vendor
def test_429_is_retryable_after_the_seconds_in_retry_after(vendor: Vendor) -> None:
    vendor.answer(429, RATE_LIMITED[vendor.name], {"Retry-After": "7"})
    with pytest.raises(RetryableProviderError) as busy:
        send(vendor)
    assert (busy.value.status, busy.value.retry_after) == (429, 7.0)


@pytest.mark.parametrize("vendor", ["postmark"], indirect=True)
def test_retry_after_as_an_http_date_is_read_as_seconds_from_now(vendor: Vendor) -> None:
    later = formatdate(time.time() + 30, usegmt=True)
    vendor.answer(503, {"ErrorCode": 0, "Message": "down"}, {"Retry-After": later})
    with pytest.raises(RetryableProviderError) as busy:
        send(vendor)
    assert busy.value.retry_after is not None and 27 <= busy.value.retry_after <= 30


@each_vendor
def test_a_server_error_is_retryable(vendor: Vendor) -> None:
    vendor.answer(500, SERVER_ERROR[vendor.name])
    with pytest.raises(RetryableProviderError) as down:
        send(vendor)
    assert (down.value.status, down.value.retry_after) == (500, None)


@each_vendor
def test_a_refused_connection_is_retryable(vendor: Vendor) -> None:
    with pytest.raises(RetryableProviderError, match="cannot connect"):
        send(vendor, base_url=f"http://127.0.0.1:{free_port()}")


@pytest.mark.parametrize("vendor", ["sendgrid"], indirect=True)
def test_sendgrid_403_is_retried_only_when_it_says_temporary_block(vendor: Vendor) -> None:
    temporary = {"errors": [{"field": None, "message": "Too many bad requests. Temporary block"}]}
    forbidden = {"errors": [{"field": "from", "message": "The from address does not match a "
                             "verified Sender Identity."}]}  # fmt: skip
    vendor.answer(403, temporary, {"Retry-After": "60"}).answer(403, forbidden)
    provider = vendor.provider()
    with pytest.raises(RetryableProviderError) as blocked:
        provider.send(MESSAGE)
    with pytest.raises(PermanentProviderError) as refused:
        provider.send(MESSAGE)
    assert blocked.value.retry_after == 60
    assert "Sender Identity" in refused.value.reason and not refused.value.suppress_recipient


# Maybe taken -------------------------------------------------------------------------------


@each_vendor
def test_no_answer_within_the_timeout_is_ambiguous_not_a_plain_retry(vendor: Vendor) -> None:
    """The request went out: the vendor may have the message. RetryableProviderError would
    make the send activity send again; AmbiguousProviderError lets it resend only to a vendor
    that dedupes on our key (Klaviyo) and record "unknown" otherwise."""
    vendor.answer(*CONTRACTS[vendor.name].ok, delay=1.0)
    started = time.monotonic()
    with pytest.raises(AmbiguousProviderError, match="no answer") as silent:
        send(vendor, timeout=0.5)
    assert time.monotonic() - started < 0.95
    assert not isinstance(silent.value, RetryableProviderError | PermanentProviderError)
    assert len(vendor.script.seen) == 1


# Refused -----------------------------------------------------------------------------------

OTHER_KEY = "sk-live-0000-do-not-leak"


@each_vendor
def test_a_bad_key_is_permanent_and_never_appears_in_the_error(vendor: Vendor) -> None:
    with pytest.raises(PermanentProviderError) as refused:
        send(vendor, api_key=OTHER_KEY)
    # Mandrill answers every error, a bad key included, as HTTP 500 {"name": "Invalid_Key"}.
    assert refused.value.status == (500 if vendor.name == "mailchimp" else 401)
    assert not refused.value.suppress_recipient
    assert OTHER_KEY not in str(refused.value) and OTHER_KEY not in repr(refused.value)
    assert OTHER_KEY not in repr(vendor.opened[0])
    assert len(vendor.script.seen) == 1  # asked once


@pytest.mark.parametrize("vendor", ["mailchimp"], indirect=True)
def test_a_key_echoed_back_by_the_vendor_is_redacted(vendor: Vendor) -> None:
    echo = {"status": "error", "name": "ValidationError", "message": f"bad body: key={KEY}"}
    vendor.answer(500, echo)
    with pytest.raises(PermanentProviderError) as refused:
        send(vendor)
    assert KEY not in str(refused.value) and "[redacted]" in refused.value.reason


@each_vendor
def test_a_refused_recipient_is_permanent_and_suppressed(vendor: Vendor) -> None:
    """The vendor's own "this address is bad" answer: Postmark's inactive recipient (406),
    Mandrill's hard-bounce rejection, SendGrid's and Klaviyo's invalid-address errors."""
    vendor.answer(*CONTRACTS[vendor.name].rejected)
    with pytest.raises(PermanentProviderError) as refused:
        send(vendor)
    assert refused.value.suppress_recipient
    if vendor.name == "postmark":  # the send activity records this reason
        assert "ErrorCode 406" in refused.value.reason


@each_vendor
def test_a_malformed_address_is_refused_by_the_vendor_and_suppressed(vendor: Vendor) -> None:
    vendor.answer(*CONTRACTS[vendor.name].ok)  # never reached: the contract refuses first
    provider = vendor.provider()
    with pytest.raises(PermanentProviderError) as refused:
        provider.send(message(to="ada.example.test"))
    assert refused.value.suppress_recipient, refused.value.reason


NOT_THE_RECIPIENT: dict[str, tuple[int, Any]] = {
    "sendgrid": (400, {"errors": [{"field": "from.email", "message": "Invalid from"}]}),
    "postmark": (422, {"ErrorCode": 300, "Message": "Error parsing 'From': Illegal address"}),
    "mailchimp": (200, [{"email": "ada@example.test", "status": "rejected",
                         "reject_reason": "unsigned", "_id": "mc-3"}]),
    "klaviyo": (400, {"errors": [{"status": 400, "code": "invalid", "detail": "Bad metric",
                                  "source": {"pointer": "/data/attributes/metric/"}}]}),
}  # fmt: skip


@each_vendor
def test_a_refusal_that_is_our_fault_does_not_suppress_the_recipient(vendor: Vendor) -> None:
    vendor.answer(*NOT_THE_RECIPIENT[vendor.name])
    with pytest.raises(PermanentProviderError) as refused:
        send(vendor)
    assert not refused.value.suppress_recipient, refused.value.reason
