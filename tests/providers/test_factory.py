"""create_provider: the right client for each name, and a named setting when one is missing."""

from __future__ import annotations

import time

import pytest
from pydantic import SecretStr

from activities.providers import (
    EmailProvider,
    ProviderConfig,
    ProviderConfigError,
    RetryableProviderError,
    create_provider,
)
from activities.providers._http import retry_after

API_KEY_PROVIDERS = ["klaviyo", "mailchimp", "postmark", "sendgrid"]


@pytest.mark.parametrize("name", API_KEY_PROVIDERS)
def test_an_api_provider_without_a_key_names_the_setting(name: str) -> None:
    with pytest.raises(ProviderConfigError, match=r"api_key \(JOURNEYS_PROVIDER_API_KEY\)"):
        create_provider(ProviderConfig(provider=name))  # type: ignore[arg-type]
    with pytest.raises(ProviderConfigError, match="api_key"):
        create_provider(ProviderConfig(provider=name, api_key=SecretStr("  ")))  # type: ignore[arg-type]


def test_webhook_and_smtp_name_what_they_lack() -> None:
    with pytest.raises(ProviderConfigError, match=r"webhook_url \(JOURNEYS_WEBHOOK_URL\)"):
        create_provider(ProviderConfig(provider="webhook"))
    with pytest.raises(ProviderConfigError, match="smtp_password"):
        create_provider(ProviderConfig(provider="smtp", smtp_username="journeys"))
    with pytest.raises(ProviderConfigError, match="smtp_host"):
        create_provider(ProviderConfig(provider="smtp", smtp_host=""))
    assert issubclass(ProviderConfigError, ValueError)


@pytest.mark.parametrize("name", [*API_KEY_PROVIDERS, "smtp", "webhook"])
def test_every_provider_keeps_the_protocol_and_hides_its_secrets(name: str) -> None:
    config = ProviderConfig(
        provider=name,  # type: ignore[arg-type]
        api_key=SecretStr("key-abc-123"),
        smtp_username="u",
        smtp_password=SecretStr("pw-abc-123"),
        webhook_url="https://hooks.example.test/j",
        webhook_secret=SecretStr("hook-abc-123"),
    )
    provider = create_provider(config)
    try:
        assert isinstance(provider, EmailProvider) and provider.name == name
        shown = repr(provider) + repr(config) + str(config)
        assert not any(s in shown for s in ("key-abc-123", "pw-abc-123", "hook-abc-123"))
    finally:
        provider.close()


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("7", 7.0),
        (" 2.5 ", 2.5),
        ("-3", 0.0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # in the past: now
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_reads_both_forms(header: str | None, seconds: float | None) -> None:
    assert retry_after(header) == seconds


def test_retry_after_as_a_future_date() -> None:
    now = time.time()
    header = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(now + 120))
    assert 119 <= (retry_after(header, now=now) or 0) <= 120


def test_errors_survive_pickling_with_their_fields() -> None:
    import pickle

    error = RetryableProviderError("postmark: HTTP 429", 429, retry_after=7.0)
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.reason, copy.status, copy.retry_after) == ("postmark: HTTP 429", 429, 7.0)
    assert (
        repr(copy)
        == "RetryableProviderError(reason='postmark: HTTP 429', status=429, retry_after=7.0)"
    )
