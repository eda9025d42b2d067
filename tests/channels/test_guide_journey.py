"""docs/authoring.md's journey that sends by push with email as the fallback and SMS as the last
touch, end to end at virtual time: the real stack and API, FCM's and Twilio's documented APIs on
loopback. What each provider received, what the outbox recorded and what an operator reads in
`GET /v1/users/{id}/journeys` are the checks."""

from __future__ import annotations

import inspect
import re
import shutil
from datetime import timedelta
from pathlib import Path

from activities.holdout import assign_group
from activities.providers.twilio import TwilioSMS
from activities.sending import DeliveryPolicy, SendingActivities
from starter.cli import check, main
from starter.report import build_report, render_text
from starter.settings import Settings
from tests.channels.guide import TrialEnding
from tests.channels.sms.conftest import SECRET, SMS_API, twilio_settings_for
from tests.conftest import renderer
from tests.delivery.test_rules import steps

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = Path(__file__).parent / "templates"
MINUTE, DAY = timedelta(minutes=1), timedelta(days=1)


def holdout_user(stack, **traits) -> str:
    while True:
        user = stack.user("held", **traits)
        if assign_group(TrialEnding.name, user, TrialEnding.holdout) == "holdout":
            return user


async def test_push_with_email_fallback_then_a_text_as_the_last_touch(
    api_for, store, fcm_api, twilio_api
):
    sending = SendingActivities(
        store,
        renderer(TEMPLATES),
        policy=DeliveryPolicy(quiet_hours=None, frequency_cap=100, secret_key=SECRET),
        sms=TwilioSMS(**twilio_settings_for(twilio_api)),
        push=fcm_api.push(on_unregistered=store.remove_device),
    )
    api = await api_for(TrialEnding, sending=sending, **SMS_API)
    stack = api.stack
    app = stack.user("app", treated_in=TrialEnding, first_name="Ada", phone="+14155550101")
    web = stack.user("web", treated_in=TrialEnding, first_name="Bo")
    stale = stack.user("stale", treated_in=TrialEnding, first_name="Cy")
    buyer = stack.user("buyer", treated_in=TrialEnding, first_name="Di", phone="+14155550104")
    held = holdout_user(stack, first_name="Ed", phone="+14155550105", sms_consent=True)
    for user, token in [(app, "fcm-ada"), (stale, "fcm-old"), (buyer, "fcm-di"), (held, "fcm-ed")]:
        answer = await api.http.post(
            f"/v1/users/{user}/devices", json={"token": token, "platform": "ios"}
        )
        assert answer.status_code == 201, answer.text
    for user in (app, buyer):  # texts need consent, given through the subscription API
        assert (await api.http.put(f"/v1/users/{user}/subscription", json={"sms": True})).json()[
            "sms"
        ]
    fcm_api.api.unregister("fcm-old")

    for user in (app, web, stale, buyer, held):
        await stack.track("Trial Ending Soon", user, {"plan": "Team"})
        await stack.advance("trial_ending", user, MINUTE)

    # Three days before: push where there is a device, email where there is none.
    assert fcm_api.api.delivered_to("fcm-ada") == [
        {
            "token": "fcm-ada",
            "notification": {
                "title": "3 days left",
                "body": "Your Team trial ends on Friday. Keep your projects: choose a plan in "
                "the app.",
            },
            "data": {"journey": "trial_ending", "step": "three_days_left"},
        }
    ]
    [ada] = stack.outbox(app)
    assert (ada.channel, ada.provider, ada.status, ada.passed_over) == ("push", "fcm", "sent", None)
    [bo] = stack.outbox(web)
    assert (bo.channel, bo.subject, bo.passed_over) == (
        "email",
        "Your Team trial ends in 3 days",
        "push: no_device",
    )
    # A device FCM no longer knows is dropped, and the choice goes on to email: nothing twice.
    assert [m.get("token") for m in fcm_api.api.sent].count("fcm-old") == 0
    assert (await api.http.get(f"/v1/users/{stale}/devices")).json()["devices"] == []
    [cy] = stack.outbox(stale)
    assert (cy.channel, cy.status, cy.passed_over) == ("email", "sent", "push: no_device")
    assert steps(stack, stale)[0] == ("three_days_left", "sent", None)

    await stack.track("Subscription Started", buyer)  # the goal ends the buyer's journey
    assert (await stack.result("trial_ending", buyer)).outcome == "converted"

    # The day before: a text to those who agreed to texts, nothing to anyone else.
    for user in (app, web, stale):
        await stack.advance("trial_ending", user, 2 * DAY)
    [text] = twilio_api.forms()
    assert (text["To"], text["Body"]) == (
        "+14155550101",
        "journeys: your Team trial ends tomorrow. Keep your projects: https://app.example/billing "
        "Reply STOP to opt out.",
    )
    assert steps(stack, web)[1] == ("last_day", "skipped", "no_phone")
    assert [m.channel for m in stack.outbox(app)] == ["push", "sms"]

    # The held-out user got nothing anywhere, on the same timers.
    await stack.advance("trial_ending", held, 2 * DAY)
    assert stack.outbox(held) == [] and fcm_api.api.delivered_to("fcm-ed") == []
    assert [s[1] for s in steps(stack, held)] == ["held_out", "held_out"]

    # What an operator reads: the channel each message went by and what was passed over.
    explained = (await api.http.get(f"/v1/users/{web}/journeys")).json()
    [message] = explained["runs"][0]["messages"]
    assert (message["channel"], message["passedOver"]) == ("email", "push: no_device")
    report = build_report(store, [TrialEnding], journey="trial_ending")
    first, last = report.journeys[0].steps
    assert (first.channels, last.channels) == ({"push": 2, "email": 2}, {"sms": 1})
    assert "sent by channel: three_days_left email 2, push 2; last_day sms 1" in render_text(report)
    page = (await api.http.get("/dashboard", params={"journey": "trial_ending"})).text
    assert re.search(r'data-step="three_days_left">.*?by email 2, push 2</div>', page, re.S)
    assert re.search(r'data-step="last_day">.*?by sms 1</div>', page, re.S)


def test_the_guide_prints_this_journey_and_journeys_check_reads_its_channels(tmp_path):
    guide = (ROOT / "docs" / "authoring.md").read_text()
    section = guide[guide.index("### More than email") :]
    printed = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert printed.strip() == inspect.getsource(TrialEnding).strip()

    settings = Settings(journey_modules=["tests.channels.guide"], templates_dirs=str(TEMPLATES))
    assert check(settings) == [("trial_ending", "OK")]
    folder = tmp_path / "templates"
    shutil.copytree(TEMPLATES, folder)
    (folder / "trial_ending" / "last_day.sms.txt").unlink()
    (folder / "trial_ending" / "three_days_left.push.txt").unlink()
    settings = settings.model_copy(update={"templates_dirs": str(folder)})
    assert sorted(problem for _, problem in check(settings)) == [
        "trial_ending/last_day.sms.txt is missing",
        "trial_ending/three_days_left.push.txt is missing",
    ]


def test_preview_renders_the_text_and_the_notification(store, monkeypatch, capsys):
    monkeypatch.setenv("JOURNEYS_DATABASE_URL", store.url)
    monkeypatch.setenv("JOURNEYS_JOURNEY_MODULES", '["tests.channels.guide"]')
    monkeypatch.setenv("JOURNEYS_TEMPLATES_DIRS", str(TEMPLATES))
    store.upsert_profile("ada", email="ada@example.test", traits={"phone": "415 555 0101"})
    store.add_device("ada", "fcm-ada", "ios")
    monkeypatch.setattr(
        TrialEnding, "preview_context", classmethod(lambda cls, event: {"plan": "Team"})
    )
    assert main(["preview", "trial_ending", "last_day", "--user", "ada", "--channel", "sms"]) == 0
    out = capsys.readouterr().out
    assert "To:      +14155550101" in out and "your Team trial ends tomorrow" in out
    assert "(111 characters)" in out
    command = ["preview", "trial_ending", "three_days_left", "--user", "ada", "--channel", "push"]
    assert main(command) == 0
    out = capsys.readouterr().out
    assert "To:      1 registered device(s)" in out and "Title:   3 days left" in out
    assert main(["preview", "trial_ending", "last_day", "--user", "ada"]) == 1  # no email parts
    assert "last_day.subject" in capsys.readouterr().err
