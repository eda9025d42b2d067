"""Twilio's webhooks posted to the running API, signed as Twilio signs them: replies to our
number (STOP, START, HELP) and the status callback of what we sent. The parameters are those
of Twilio's incoming-message and status-callback requests (tests/providers/twilio_api.py)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from urllib.parse import urlencode

import httpx
import pytest
from sqlmodel import select

from activities.phones import phone_hash
from activities.store import JourneyRun, MessageEvent, OutboxMessage, SmsOptOut, Store
from starter.engagement import journey_engagement
from starter.sms import EMPTY_TWIML
from starter.sms import twilio_signature as our_signature
from tests.channels.sms.conftest import INBOUND, PUBLIC, SECRET, SMS_API, STATUS
from tests.providers.twilio_api import (
    AUTH_TOKEN,
    SIGNATURE,
    inbound_params,
    message_sid,
    post_webhook,
    status_params,
    twilio_signature,
)

pytestmark = pytest.mark.both_databases
"""Each test on SQLite and on PostgreSQL."""

NUMBER = "+14155550100"


def opted_out(store: Store, number: str = NUMBER) -> str | None:
    """The keyword the number opted out with, or None."""
    with store.session() as session:
        row = session.get(SmsOptOut, phone_hash(SECRET, number))
        return row.keyword if row else None


def test_the_signature_is_twilios_documented_one():
    """The example in Twilio's security docs (token 12345) gives the published signature."""
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    params = {
        "CallSid": "CA1234567890ABCDE",
        "Caller": "+14158675309",
        "Digits": "1234",
        "From": "+14158675309",
        "To": "+18005551212",
    }
    assert twilio_signature("12345", url, params) == "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    assert our_signature("12345", url, list(params.items())) == "RSOYDt4T1cUTdK1PDd93/VVr8B8="


async def test_stop_stops_texts_to_the_number_and_start_lifts_it(api_for, store):
    api = await api_for(**SMS_API)

    async def reply(body: str) -> httpx.Response:
        answer = await post_webhook(
            api.url, INBOUND, inbound_params(NUMBER, body), public_url=PUBLIC
        )
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"].startswith("text/xml")
        assert answer.text == EMPTY_TWIML
        return answer

    await reply("HELP")
    assert opted_out(store) is None
    await reply("STOP")
    assert opted_out(store) == "STOP"
    assert store.sms_opted_out(phone_hash(SECRET, NUMBER))
    await reply("INFO")
    await reply("please stop texting me")  # not a keyword: the whole body must be one
    assert opted_out(store) == "STOP"
    await reply("Start")
    assert opted_out(store) is None
    await reply("  stop \n")
    assert opted_out(store) == "STOP"
    await reply("unstop")
    assert opted_out(store) is None
    for keyword in ("STOPALL", "unsubscribe", "Cancel", "END", "quit", "REVOKE", "OPTOUT"):
        await reply(keyword)
        assert opted_out(store) == keyword.upper(), keyword
        await reply("YES")
        assert opted_out(store) is None
    assert opted_out(store, "+14155550101") is None  # only the sender's number


async def test_a_console_url_with_a_query_string_is_signed_with_it(api_for, store):
    api = await api_for(**SMS_API)
    path = f"{INBOUND}?site=shop"
    answer = await post_webhook(api.url, path, inbound_params(NUMBER, "STOP"), public_url=PUBLIC)
    assert answer.status_code == 200, answer.text
    assert opted_out(store) == "STOP"
    short_code = await post_webhook(
        api.url, INBOUND, inbound_params("89077", "STOP"), public_url=PUBLIC
    )  # a sender that is no phone number: answered, nothing to key
    assert short_code.status_code == 200 and short_code.text == EMPTY_TWIML


async def test_a_replayed_stop_has_one_effect(api_for, store):
    api = await api_for(**SMS_API)
    params = inbound_params(NUMBER, "STOP")
    for _ in range(3):
        answer = await post_webhook(api.url, INBOUND, params, public_url=PUBLIC)
        assert answer.status_code == 200
    with store.session() as session:
        assert len(session.exec(select(SmsOptOut)).all()) == 1
    assert opted_out(store) == "STOP"


async def test_an_unsigned_or_missigned_request_is_refused_and_changes_nothing(api_for, store):
    api = await api_for(**SMS_API)
    params = inbound_params(NUMBER, "STOP")
    good = twilio_signature(AUTH_TOKEN, PUBLIC + INBOUND, params)
    refused = {
        "absent": None,
        "empty": "",
        "another token": twilio_signature("0" * 32, PUBLIC + INBOUND, params),
        "another URL (the one the API listens on)": twilio_signature(
            AUTH_TOKEN, api.url + INBOUND, params
        ),
        "another path": twilio_signature(AUTH_TOKEN, PUBLIC + STATUS, params),
        "other parameters": twilio_signature(
            AUTH_TOKEN, PUBLIC + INBOUND, {**params, "Body": "HI"}
        ),
        "not base64": "%%%",
    }
    async with httpx.AsyncClient(base_url=api.url) as twilio:
        for why, signature in refused.items():
            headers = {"Content-Type": "application/x-www-form-urlencoded"}
            if signature is not None:
                headers[SIGNATURE] = signature
            answer = await twilio.post(INBOUND, content=urlencode(params), headers=headers)
            assert answer.status_code == 403, why
            assert "signature rejected" in answer.json()["detail"], why
            assert good not in answer.text
        altered = urlencode({**params, "From": "+14155550199"})
        headers = {"Content-Type": "application/x-www-form-urlencoded", SIGNATURE: good}
        assert (await twilio.post(INBOUND, content=altered, headers=headers)).status_code == 403
    assert opted_out(store) is None and opted_out(store, "+14155550199") is None


async def test_a_hostile_body_gets_a_clear_4xx(api_for, store):
    api = await api_for(**SMS_API)
    huge = b"Body=" + b"S" * 1_100_000
    cases = {
        "JSON, not form fields": (b'{"Body": "STOP"}', "application/json", 400),
        "bytes that are no encoding": (b"Body=\xff\xfe", "application/x-www-form-urlencoded", 400),
        "over a megabyte": (huge, "application/x-www-form-urlencoded", 413),
    }
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as client:
        for why, (body, kind, status) in cases.items():
            headers = {"Content-Type": kind, SIGNATURE: "c2lnbmVk"}
            answer = await client.post(INBOUND, content=body, headers=headers)
            assert answer.status_code == status, (why, answer.text)
            assert answer.json()["detail"], why
    assert opted_out(store) is None


async def test_the_webhooks_are_off_unless_sms_goes_through_twilio(api_for, store):
    api = await api_for(**{**SMS_API, "sms_provider": "none"})
    for path in (INBOUND, STATUS):
        answer = await post_webhook(
            api.url, path, inbound_params(NUMBER, "STOP"), public_url=PUBLIC
        )
        assert answer.status_code == 404
        assert "JOURNEYS_SMS_PROVIDER" in answer.json()["detail"]
    assert opted_out(store) is None


def sent_sms(store: Store, user: str) -> str:
    """An SMS step's outbox row as the send activity leaves it after Twilio took it (and its
    journey run); returns Twilio's message SID."""
    sid = message_sid()
    run_id = f"run-{uuid.uuid4().hex[:12]}"
    now = datetime.now(UTC)
    with store.session() as session:
        session.add(
            JourneyRun(
                run_id=run_id, workflow_id=f"cart_recovery:{user}", journey="cart_recovery",
                user_id=user, group="treatment", entered_at=now,
            )
        )  # fmt: skip
        session.add(
            OutboxMessage(
                idempotency_key=f"cart_recovery:{user}:{run_id}/3", run_id=run_id,
                journey="cart_recovery", user_id=user, template="sms_reminder", channel="sms",
                recipient=NUMBER, body_text="Your cart is waiting", status="sent",
                provider="twilio", provider_message_id=sid, journey_time=now,
            )
        )  # fmt: skip
        session.commit()
    return sid


def message_events(store: Store) -> list[MessageEvent]:
    with store.session() as session:
        query = select(MessageEvent).order_by(MessageEvent.id)  # type: ignore[arg-type]
        return list(session.exec(query))


async def test_a_delivery_status_is_recorded_once_against_its_message(api_for, store):
    api = await api_for(**SMS_API)
    sid = sent_sms(store, "u-sms-1")

    async def callback(status: str, error: str | None = None) -> dict[str, int | str]:
        params = status_params(sid, status, NUMBER, error)
        answer = await post_webhook(api.url, STATUS, params, public_url=PUBLIC)
        assert answer.status_code == 200, answer.text
        return answer.json()  # type: ignore[no-any-return]

    assert await callback("queued") == {"status": "ignored"}
    assert await callback("sent") == {"status": "ignored"}
    assert await callback("delivered") == {"status": "accepted", "applied": 1, "duplicates": 0}
    assert await callback("delivered") == {"status": "accepted", "applied": 0, "duplicates": 1}
    [event] = message_events(store)
    assert (event.kind, event.source, event.user_id) == ("delivered", "twilio", "u-sms-1")
    assert (event.journey, event.step) == ("cart_recovery", "sms_reminder")
    assert event.message_key is not None and event.message_key.endswith("/3")
    assert opted_out(store) is None  # delivered: nothing to stop
    # The email report reads message_events too: an SMS status must not break it.
    report = journey_engagement(store, "cart_recovery", None, None)
    assert report.totals["bounce"] == 0 and "delivered" not in report.totals


@pytest.mark.parametrize("code", ["30003", "30005", "30006", "21610"])
async def test_an_unreachable_number_gets_no_more_texts(api_for, store, code):
    api = await api_for(**SMS_API)
    sid = sent_sms(store, "u-sms-2")
    params = status_params(sid, "undelivered", NUMBER, code)
    for _ in range(2):
        answer = await post_webhook(api.url, STATUS, params, public_url=PUBLIC)
        assert answer.status_code == 200, answer.text
    assert opted_out(store) == "invalid"
    [event] = message_events(store)
    assert (event.kind, event.detail) == ("undelivered", f"ErrorCode {code}")


async def test_a_failure_for_another_reason_is_recorded_without_stopping_the_number(api_for, store):
    api = await api_for(**SMS_API)
    sid = sent_sms(store, "u-sms-3")
    params = status_params(sid, "failed", NUMBER, "30007")  # carrier filtering: the message
    answer = await post_webhook(api.url, STATUS, params, public_url=PUBLIC)
    assert answer.json()["applied"] == 1
    assert opted_out(store) is None
    assert [e.kind for e in message_events(store)] == ["failed"]
    unsigned = await post_webhook(
        api.url, STATUS, status_params(sid, "undelivered", NUMBER, "30003"),
        public_url=PUBLIC, signature="",
    )  # fmt: skip
    assert unsigned.status_code == 403
    assert opted_out(store) is None and len(message_events(store)) == 1


async def test_a_stop_keeps_its_keyword_when_the_number_later_fails(api_for, store):
    api = await api_for(**SMS_API)
    sid = sent_sms(store, "u-sms-4")
    await post_webhook(api.url, INBOUND, inbound_params(NUMBER, "STOP"), public_url=PUBLIC)
    params = status_params(sid, "undelivered", NUMBER, "21610")
    assert (await post_webhook(api.url, STATUS, params, public_url=PUBLIC)).status_code == 200
    assert opted_out(store) == "STOP"
