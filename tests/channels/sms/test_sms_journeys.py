"""Journeys that text, end to end: the real stack and API, Twilio's documented Messages API on
loopback, and Twilio's signed webhooks posted to our API. What Twilio received is the check."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from activities.providers.twilio import TwilioSMS
from activities.sending import DeliveryPolicy, SendingActivities
from activities.suppression import QuietHours
from tests.channels.journeys import Texts
from tests.channels.sms.conftest import (
    INBOUND,
    PUBLIC,
    SECRET,
    SMS_API,
    twilio_settings_for,
)
from tests.conftest import renderer
from tests.delivery.test_rules import steps
from tests.providers.twilio_api import FROM_NUMBER, hang, inbound_params, post_webhook, refused

TEMPLATES = Path(__file__).parents[1] / "templates"
HOUR = timedelta(hours=1, minutes=1)


def sending(store, twilio, **policy: object) -> SendingActivities:
    rules = {"quiet_hours": None, "frequency_cap": 100, "secret_key": SECRET, **policy}
    return SendingActivities(
        store,
        renderer(TEMPLATES),
        policy=DeliveryPolicy(**rules),
        sms=TwilioSMS(**twilio_settings_for(twilio)),
    )


async def test_texts_go_to_consenting_numbers_as_twilio_documents_them(api_for, store, twilio_api):
    api = await api_for(Texts, sending=sending(store, twilio_api), **SMS_API)
    user = api.stack.user(first_name="Ada", phone="(415) 555-0132", sms_consent=True)
    await api.stack.track("Texts Requested", user)
    await api.stack.advance("t_texts", user, HOUR)

    code, promo = twilio_api.forms()
    assert code == {
        "To": "+14155550132",
        "From": FROM_NUMBER,
        "Body": "Your code is 482913",
        "StatusCallback": f"{PUBLIC}/v1/sms/twilio/status",
    }
    assert promo["Body"] == (
        "journeys: Ada, your cart is waiting. 10% off today: https://shop.example/cart "
        "Reply STOP to opt out."
    )
    rows = api.stack.outbox(user)
    assert [(m.channel, m.provider, m.status, m.recipient) for m in rows] == [
        ("sms", "twilio", "sent", "+14155550132")
    ] * 2
    assert [m.provider_message_id for m in rows] == [m["sid"] for m in twilio_api.messages]
    assert rows[0].subject is None and rows[0].body_text == "Your code is 482913"


async def test_marketing_texts_need_consent_and_a_stop_ends_every_text(api_for, store, twilio_api):
    api = await api_for(Texts, sending=sending(store, twilio_api), **SMS_API)
    silent = api.stack.user(first_name="Ada", phone="+14155550111")
    no_phone = api.stack.user(first_name="Bo", sms_consent=True)
    bad_phone = api.stack.user(first_name="Cy", phone="call me", sms_consent=True)
    stopper = api.stack.user(first_name="Di", phone="+1 415 555 0199", sms_consent=True)
    for user in (silent, no_phone, bad_phone):
        await api.stack.track("Texts Requested", user)
        await api.stack.advance("t_texts", user, HOUR)
    assert [f["To"] for f in twilio_api.forms()] == ["+14155550111"]  # the transactional code
    assert steps(api.stack, silent) == [("code", "sent", None), ("promo", "skipped", "no_consent")]
    assert steps(api.stack, no_phone)[0] == ("code", "skipped", "no_phone")
    assert steps(api.stack, bad_phone)[0] == ("code", "skipped", "invalid_phone")

    await api.stack.track("Texts Requested", stopper)
    await api.stack.advance("t_texts", stopper, timedelta(minutes=1))
    stop = await post_webhook(
        api.url, INBOUND, inbound_params("+14155550199", "Stop"), public_url=PUBLIC
    )
    assert stop.status_code == 200
    await api.stack.advance("t_texts", stopper, HOUR)
    assert steps(api.stack, stopper) == [
        ("code", "sent", None),
        ("promo", "skipped", "unsubscribed"),
    ]
    state = (await api.http.get(f"/v1/users/{stopper}/subscription")).json()
    assert (state["sms"], state["smsStopped"]) == (False, True)

    await post_webhook(api.url, INBOUND, inbound_params("+14155550199", "START"), public_url=PUBLIC)
    await api.stack.advance("t_texts", stopper, HOUR)
    assert steps(api.stack, stopper)[-1] == ("promo", "sent", None)


async def test_texts_keep_their_own_cap_and_quiet_hours(api_for, store, twilio_api):
    night = QuietHours.parse("00:00-23:59")  # always night where the user is
    api = await api_for(
        Texts,
        sending=sending(store, twilio_api, sms_frequency_cap=1, frequency_cap=100),
        **SMS_API,
    )
    user = api.stack.user(first_name="Ada", phone="+14155550123", sms_consent=True)
    await api.stack.track("Texts Requested", user)
    await api.stack.advance("t_texts", user, HOUR)
    await api.stack.advance("t_texts", user, HOUR)
    assert steps(api.stack, user) == [
        ("code", "sent", None),  # transactional: not capped
        ("promo", "sent", None),
        ("promo", "skipped", "frequency_cap"),  # one marketing text a week
    ]

    api2 = await api_for(Texts, sending=sending(store, twilio_api, quiet_hours=night), **SMS_API)
    late = api2.stack.user(first_name="Bo", phone="+14155550124", sms_consent=True)
    await api2.stack.track("Texts Requested", late)
    await api2.stack.advance("t_texts", late, HOUR)
    state = await api2.stack.state("t_texts", late)
    assert "quiet hours before promo" in state.step
    assert [f["To"] for f in twilio_api.forms()].count("+14155550124") == 1  # only the code


async def test_a_refused_or_unanswered_text_is_never_sent_twice(api_for, store, twilio_api):
    api = await api_for(Texts, sending=sending(store, twilio_api), **SMS_API)
    landline = api.stack.user(first_name="Ada", phone="+14155550150", sms_consent=True)
    twilio_api.script(refused(21614))
    await api.stack.track("Texts Requested", landline)
    await api.stack.advance("t_texts", landline, HOUR)
    assert steps(api.stack, landline)[0][:2] == ("code", "failed")
    assert steps(api.stack, landline)[1] == ("promo", "skipped", "unsubscribed")  # not a mobile
    assert len(twilio_api.received) == 1

    slow = api.stack.user(first_name="Bo", phone="+14155550151", sms_consent=True)
    twilio_api.script(hang(15))  # longer than the client's timeout: it may have the text
    await api.stack.track("Texts Requested", slow)
    await api.stack.advance("t_texts", slow, timedelta(minutes=1))
    twilio_api.release()
    [row] = api.stack.outbox(slow)
    assert (row.status, row.channel) == ("unknown", "sms")
    await api.stack.advance("t_texts", slow, HOUR)  # the journey goes on: no second attempt
    codes = [f for f in twilio_api.forms() if f.get("To") == "+14155550151"]
    assert next(f["Body"] for f in codes) == "Your code is 482913"
    assert sum(f["Body"].startswith("Your code") for f in codes) == 1
