"""Each HTTP provider against a local server that follows its documented contract."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from fastapi.responses import JSONResponse
from pydantic import SecretStr

from activities.providers import (
    AmbiguousProviderError,
    OutgoingMessage,
    PermanentProviderError,
    ProviderConfig,
    ProviderConfigError,
    RetryableProviderError,
    create_provider,
)
from activities.providers.webhook import sign
from tests.conftest import serving
from tests.providers.servers import Script, contract_app

KEY = "sk-live-very-secret"
MESSAGE = OutgoingMessage(
    to="ada@example.test",
    from_email="shop@example.test",
    from_name="Shop",
    subject="Your cart",
    html="<p>Hi</p>",
    text="Hi",
    headers={
        "List-Unsubscribe": "<https://x.test/u/t>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    },
    idempotency_key="cart_recovery:u1/run/3",
    journey="cart_recovery",
    step="reminder",
    user_id="u1",
    properties={"items": [{"sku": "chair"}]},
)


def needs(header: str, value: str | None = None, field: str | None = None) -> Any:
    """A contract check: the header (with that value) and the body field must be there."""

    def check(request: Any, body: bytes) -> JSONResponse | None:
        got = request.headers.get(header)
        if got is None or (value is not None and got != value):
            return JSONResponse({"errors": [{"message": "unauthorized"}]}, status_code=401)
        if field and field not in json.loads(body):
            return JSONResponse({"errors": [{"message": f"{field} required"}]}, status_code=400)
        return None

    return check


PROVIDERS = {
    # name: (path, contract, success answer, recipient-rejected answer)
    "sendgrid": (
        "/v3/mail/send",
        needs("authorization", f"Bearer {KEY}", "personalizations"),
        (202, "", {"X-Message-Id": "sg-1"}),
        (400, {"errors": [{"message": "The to email does not contain a valid address."}]}, {}),
    ),
    "postmark": (
        "/email",
        needs("x-postmark-server-token", KEY, "From"),
        (200, {"ErrorCode": 0, "Message": "OK", "MessageID": "pm-1"}, {}),
        (422, {"ErrorCode": 406, "Message": "Inactive recipient"}, {}),
    ),
    "mailchimp": (
        "/api/1.0/messages/send",
        needs("content-type", None, "key"),
        (200, [{"email": "ada@example.test", "status": "sent", "_id": "mc-1"}], {}),
        (
            200,
            [{"email": "ada@example.test", "status": "rejected", "reject_reason": "hard-bounce"}],
            {},
        ),
    ),
    "klaviyo": (
        "/api/events",
        needs("authorization", f"Klaviyo-API-Key {KEY}", "data"),
        (202, "", {}),
        (400, {"errors": [{"detail": "Invalid email address"}]}, {}),
    ),
}


async def run(provider_name: str, script: Script, timeout: float = 5.0) -> Any:
    path, check, _, _ = PROVIDERS[provider_name]
    async with serving(contract_app(script, path, check)) as url:
        config = ProviderConfig(
            provider=provider_name, api_key=SecretStr(KEY), base_url=url, timeout=timeout
        )
        provider = create_provider(config)
        try:
            return await asyncio.to_thread(provider.send, MESSAGE)
        finally:
            provider.close()


@pytest.mark.parametrize("name", sorted(PROVIDERS))
async def test_a_message_is_accepted_and_sent_in_the_providers_shape(name):
    script = Script().then(*PROVIDERS[name][2])
    delivery = await run(name, script)
    assert delivery.provider == name
    [request] = script.seen
    body = request.json()
    text = json.dumps(body)
    assert "ada@example.test" in text
    if name == "sendgrid":
        assert body["personalizations"][0]["to"] == [{"email": "ada@example.test"}]
        assert body["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert delivery.provider_message_id == "sg-1"
    elif name == "postmark":
        assert {"Name": "List-Unsubscribe", "Value": "<https://x.test/u/t>"} in body["Headers"]
        assert body["HtmlBody"] == "<p>Hi</p>" and delivery.provider_message_id == "pm-1"
    elif name == "mailchimp":
        assert body["key"] == KEY and body["message"]["subject"] == "Your cart"
        assert body["message"]["headers"]["List-Unsubscribe"] == "<https://x.test/u/t>"
    elif name == "klaviyo":
        attributes = body["data"]["attributes"]
        assert attributes["unique_id"] == MESSAGE.idempotency_key  # Klaviyo dedupes on it
        assert (
            attributes["metric"]["data"]["attributes"]["name"] == "Journey cart_recovery reminder"
        )
        assert request.headers["revision"]


@pytest.mark.parametrize("name", sorted(PROVIDERS))
async def test_429_with_retry_after_and_5xx_are_retryable(name):
    with pytest.raises(RetryableProviderError) as busy:
        await run(name, Script().then(429, {}, {"Retry-After": "7"}))
    assert busy.value.retry_after == 7
    with pytest.raises(RetryableProviderError):
        await run(name, Script().then(503, {}))


@pytest.mark.parametrize("name", sorted(PROVIDERS))
async def test_a_bad_key_is_permanent_and_the_key_is_never_in_the_error(name):
    path, check, success, _ = PROVIDERS[name]
    script = Script().then(*success)
    if name == "mailchimp":  # Mandrill answers a bad key as HTTP 500 with Invalid_Key
        script = Script().then(500, {"status": "error", "name": "Invalid_Key", "message": "bad"})
    wrong = "wrong-" + KEY
    async with serving(contract_app(script, path, check)) as url:
        provider = create_provider(
            ProviderConfig(provider=name, api_key=SecretStr(wrong), base_url=url)
        )
        with pytest.raises(PermanentProviderError) as refused:
            await asyncio.to_thread(provider.send, MESSAGE)
        provider.close()
    assert len(script.seen) == 1  # asked once, not retried
    assert wrong not in str(refused.value) and wrong not in repr(refused.value)


@pytest.mark.parametrize("name", sorted(PROVIDERS))
async def test_a_rejected_recipient_is_permanent(name):
    with pytest.raises(PermanentProviderError) as refused:
        await run(name, Script().then(*PROVIDERS[name][3]))
    if name in ("sendgrid", "postmark", "mailchimp"):
        assert refused.value.suppress_recipient


async def test_no_answer_after_sending_is_ambiguous_not_retryable():
    with pytest.raises(AmbiguousProviderError):
        await run("postmark", Script(delay=2.0).then(*PROVIDERS["postmark"][2]), timeout=0.5)


async def test_the_webhook_is_signed_the_standard_webhooks_way():
    secret = "whsec_" + "c2VjcmV0LWtleS1mb3ItdGVzdHM="
    script = Script().then(204, "")
    async with serving(contract_app(script, "/hook", lambda r, b: None)) as url:
        provider = create_provider(
            ProviderConfig(
                provider="webhook", webhook_url=f"{url}/hook", webhook_secret=SecretStr(secret)
            )
        )
        await asyncio.to_thread(provider.send, MESSAGE)
        gone = Script().then(410, "")
        async with serving(contract_app(gone, "/hook", lambda r, b: None)) as url2:
            provider = create_provider(
                ProviderConfig(provider="webhook", webhook_url=f"{url2}/hook")
            )
            with pytest.raises(PermanentProviderError):
                await asyncio.to_thread(provider.send, MESSAGE)
    [request] = script.seen
    headers = request.headers
    assert headers["webhook-id"] == MESSAGE.idempotency_key
    expected = sign(secret, headers["webhook-id"], int(headers["webhook-timestamp"]), request.body)
    assert headers["webhook-signature"] == expected
    assert request.json()["user_id"] == "u1"


def test_a_missing_setting_is_named():
    with pytest.raises(ProviderConfigError, match="JOURNEYS_PROVIDER_API_KEY"):
        create_provider(ProviderConfig(provider="sendgrid"))
    with pytest.raises(ProviderConfigError, match="JOURNEYS_WEBHOOK_URL"):
        create_provider(ProviderConfig(provider="webhook"))
