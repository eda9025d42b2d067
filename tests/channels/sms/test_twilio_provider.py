"""TwilioSMS against Twilio's documented Messages API on loopback: what Twilio receives, and
how each of its answers reaches the send activity."""

from __future__ import annotations

import base64
import re
from urllib.parse import urlencode

import pytest

from activities.providers.base import (
    AmbiguousProviderError,
    OutgoingMessage,
    PermanentProviderError,
    ProviderConfigError,
    RetryableProviderError,
)
from activities.providers.twilio import TwilioSMS
from tests.channels.sms.conftest import PUBLIC, STATUS, twilio_settings_for
from tests.providers.servers import Reply, free_port, message
from tests.providers.twilio_api import (
    ACCOUNT_SID,
    API_PATH,
    AUTH_TOKEN,
    FROM_NUMBER,
    MESSAGING_SERVICE_SID,
    TwilioServer,
    error_document,
    hang,
    refused,
    server_error,
    too_many_requests,
)

NUMBER = "+14155550100"
TEXT = (
    "Hi Ada, your lamp is still in your cart: https://shop.example.test/c/1 Reply STOP to opt out"
)


def sms(**changes: str) -> OutgoingMessage:
    """An SMS as the send activity builds it: `to` in E.164, `text` the rendered body."""
    return message(**{"to": NUMBER, "text": TEXT, **changes})


def provider(server: TwilioServer, **changes: object) -> TwilioSMS:
    return TwilioSMS(**twilio_settings_for(server, **changes))  # type: ignore[arg-type]


def test_twilio_gets_exactly_the_documented_form_and_its_sid_is_kept(twilio_api):
    with provider(twilio_api) as twilio:
        delivery = twilio.send(sms())

    [request] = twilio_api.received
    assert (request.method, request.path) == ("POST", API_PATH)
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    credentials = base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
    assert request.headers["authorization"] == f"Basic {credentials}"
    assert request.body == urlencode(
        [("To", NUMBER), ("From", FROM_NUMBER), ("Body", TEXT),
         ("StatusCallback", f"{PUBLIC}{STATUS}")]
    ).encode()  # fmt: skip
    [created] = twilio_api.messages
    assert created["status"] == "queued" and created["to"] == NUMBER
    assert re.fullmatch(r"SM[0-9a-f]{32}", created["sid"])
    assert delivery.provider == "twilio"
    assert delivery.provider_message_id == created["sid"]


def test_a_messaging_service_is_the_sender_when_set_and_unicode_arrives_intact(twilio_api):
    text = "Olá Zoë, 20 % de réduction 🎉"
    settings = {"messaging_service_sid": MESSAGING_SERVICE_SID, "status_callback": None}
    with provider(twilio_api, **settings) as twilio:
        twilio.send(sms(text=text))
    [form] = twilio_api.forms()
    assert form == {"To": NUMBER, "MessagingServiceSid": MESSAGING_SERVICE_SID, "Body": text}
    assert twilio_api.messages[0]["status"] == "accepted"


def test_rate_limits_and_server_errors_are_retried_after_what_twilio_says(twilio_api):
    twilio_api.script(too_many_requests(retry_after=7), server_error())
    with provider(twilio_api) as twilio:
        with pytest.raises(RetryableProviderError) as limited:
            twilio.send(sms())
        with pytest.raises(RetryableProviderError) as failed:
            twilio.send(sms())
        assert twilio.send(sms()).provider_message_id  # the queue is empty: taken
    assert (limited.value.status, limited.value.retry_after) == (429, 7.0)
    assert "20429" in limited.value.reason
    assert (failed.value.status, failed.value.retry_after) == (500, None)
    assert len(twilio_api.messages) == 1


@pytest.mark.parametrize("code", [21211, 21614, 21610])
def test_a_number_twilio_calls_bad_or_unsubscribed_is_suppressed(twilio_api, code):
    twilio_api.script(refused(code))
    with provider(twilio_api) as twilio, pytest.raises(PermanentProviderError) as err:
        twilio.send(sms())
    assert err.value.suppress_recipient is True
    assert err.value.status == 400 and str(code) in err.value.reason
    assert twilio_api.messages == []


def test_a_malformed_number_is_refused_by_twilio_and_suppressed(twilio_api):
    with provider(twilio_api) as twilio, pytest.raises(PermanentProviderError) as err:
        twilio.send(sms(to="4155550100"))  # not E.164: Twilio's own 21211
    assert err.value.suppress_recipient is True and "21211" in err.value.reason


def test_a_too_long_body_fails_without_blaming_the_number(twilio_api):
    with provider(twilio_api) as twilio, pytest.raises(PermanentProviderError) as err:
        twilio.send(sms(text="x" * 1601))
    assert err.value.suppress_recipient is False and "21617" in err.value.reason


def test_a_wrong_token_is_permanent_and_never_shown(twilio_api):
    wrong = "0" * 31 + "1"
    with provider(twilio_api, auth_token=wrong) as twilio:
        with pytest.raises(PermanentProviderError) as err:
            twilio.send(sms())
        shown = repr(twilio)
    assert err.value.status == 401 and "20003" in err.value.reason
    assert err.value.suppress_recipient is False
    credentials = base64.b64encode(f"{ACCOUNT_SID}:{wrong}".encode()).decode()
    for text in (err.value.reason, repr(err.value), str(err.value), shown):
        assert wrong not in text and credentials not in text


def test_a_token_echoed_by_the_server_is_redacted_from_the_reason(twilio_api):
    echo = error_document(20001, 400, f"Bad credentials {AUTH_TOKEN} for {ACCOUNT_SID}")
    twilio_api.script(Reply(400, echo))
    with provider(twilio_api) as twilio, pytest.raises(PermanentProviderError) as err:
        twilio.send(sms())
    assert AUTH_TOKEN not in err.value.reason and "[redacted]" in err.value.reason


def test_no_answer_after_the_request_went_out_is_ambiguous(twilio_api):
    twilio_api.script(hang(5))
    with provider(twilio_api, timeout=0.5) as twilio, pytest.raises(AmbiguousProviderError):
        twilio.send(sms())
    assert len(twilio_api.received) == 1  # Twilio had it: never resend (no idempotency key)
    assert TwilioSMS.idempotent is False


def test_nothing_listening_is_retryable():
    twilio = TwilioSMS(
        ACCOUNT_SID, AUTH_TOKEN, FROM_NUMBER, None, f"http://127.0.0.1:{free_port()}"
    )
    with twilio, pytest.raises(RetryableProviderError):
        twilio.send(sms())


@pytest.mark.parametrize(
    ("missing", "setting"),
    [
        ({"account_sid": None}, "JOURNEYS_TWILIO_ACCOUNT_SID"),
        ({"auth_token": ""}, "JOURNEYS_TWILIO_AUTH_TOKEN"),
        ({"from_number": None, "messaging_service_sid": None}, "JOURNEYS_TWILIO_FROM"),
    ],
)
def test_a_missing_setting_is_named(missing, setting):
    arguments = {
        "account_sid": ACCOUNT_SID,
        "auth_token": AUTH_TOKEN,
        "from_number": FROM_NUMBER,
        "messaging_service_sid": None,
        **missing,
    }
    with pytest.raises(ProviderConfigError, match=setting) as err:
        TwilioSMS(**arguments)
    assert AUTH_TOKEN not in str(err.value)
