"""The signed webhook against a loopback Standard Webhooks receiver that verifies signatures."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import pytest
from pydantic import SecretStr

from activities.providers import (
    AmbiguousProviderError,
    PermanentProviderError,
    ProviderConfig,
    ProviderConfigError,
    RetryableProviderError,
    create_provider,
)
from tests.providers.conftest import Vendor
from tests.providers.servers import free_port, message, standard_webhook_check

webhook = pytest.mark.parametrize("vendor", ["webhook"], indirect=True)
KEY_BYTES = b"journeys-test-signing-key-32byte"
WHSEC = "whsec_" + base64.b64encode(KEY_BYTES).decode()
MESSAGE = message()


def recompute(key: bytes, headers: dict[str, str], body: bytes) -> str:
    """The Standard Webhooks signature, computed here from the spec, not from our code."""
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


@webhook
def test_the_message_is_posted_signed_with_a_whsec_secret(vendor: Vendor) -> None:
    vendor.server.stub.check = standard_webhook_check(WHSEC)  # the receiver verifies too
    vendor.answer(204)
    provider = vendor.provider(webhook_secret=SecretStr(WHSEC))
    delivery = provider.send(MESSAGE)
    [request] = vendor.script.seen
    assert request.path == "/hooks/journeys"
    assert request.headers["webhook-id"] == MESSAGE.idempotency_key  # receivers dedupe on it
    assert abs(int(request.headers["webhook-timestamp"]) - time.time()) < 5
    assert request.headers["webhook-signature"] == recompute(
        KEY_BYTES, request.headers, request.body
    )
    body = request.json()
    assert body["type"] == "journey.message"
    assert body["data"] == MESSAGE.model_dump(mode="json")
    assert body["data"]["headers"] == MESSAGE.headers
    assert (delivery.provider, delivery.provider_message_id) == ("webhook", MESSAGE.idempotency_key)
    assert provider.idempotent
    assert WHSEC not in repr(provider)


@webhook
def test_a_raw_secret_is_used_as_its_bytes(vendor: Vendor) -> None:
    vendor.server.stub.check = standard_webhook_check("plain-shared-secret")
    vendor.answer(200, {"ok": True})
    vendor.provider(webhook_secret=SecretStr("plain-shared-secret")).send(MESSAGE)
    [request] = vendor.script.seen
    expected = recompute(b"plain-shared-secret", request.headers, request.body)
    assert request.headers["webhook-signature"] == expected


@webhook
def test_a_wrong_secret_is_refused_by_the_receiver_as_permanent(vendor: Vendor) -> None:
    vendor.server.stub.check = standard_webhook_check(WHSEC)
    with pytest.raises(PermanentProviderError) as refused:
        vendor.provider(webhook_secret=SecretStr("whsec_" + "d3Jvbmc=")).send(MESSAGE)
    assert refused.value.status == 401


@webhook
def test_410_means_disabled_for_good(vendor: Vendor) -> None:
    vendor.answer(410, "gone")
    with pytest.raises(PermanentProviderError) as gone:
        vendor.provider().send(MESSAGE)
    assert gone.value.status == 410


@webhook
def test_429_and_5xx_are_retryable_with_retry_after(vendor: Vendor) -> None:
    vendor.answer(429, "slow down", {"Retry-After": "3"}).answer(502, "bad gateway")
    provider = vendor.provider()
    with pytest.raises(RetryableProviderError) as busy:
        provider.send(MESSAGE)
    with pytest.raises(RetryableProviderError) as down:
        provider.send(MESSAGE)
    assert (busy.value.retry_after, down.value.status) == (3.0, 502)


@webhook
def test_no_answer_within_the_timeout_is_ambiguous(vendor: Vendor) -> None:
    vendor.answer(200, delay=1.0)
    with pytest.raises(AmbiguousProviderError):
        vendor.provider(timeout=0.5).send(MESSAGE)


def test_a_token_in_the_webhook_url_stays_out_of_errors() -> None:
    url = f"http://127.0.0.1:{free_port()}/hooks?token=url-secret-123"  # nothing listens
    provider = create_provider(ProviderConfig(provider="webhook", webhook_url=url, timeout=0.5))
    with pytest.raises(RetryableProviderError) as failed:
        provider.send(MESSAGE)
    provider.close()
    assert "url-secret-123" not in str(failed.value) + repr(failed.value) + repr(provider)


def test_a_malformed_whsec_secret_or_url_fails_at_start_up() -> None:
    with pytest.raises(ProviderConfigError, match="base64"):
        create_provider(
            ProviderConfig(
                provider="webhook",
                webhook_url="https://hooks.example.test/j",
                webhook_secret=SecretStr("whsec_not*base64"),
            )
        )
    with pytest.raises(ProviderConfigError, match="http"):
        create_provider(ProviderConfig(provider="webhook", webhook_url="ftp://x.test/"))
