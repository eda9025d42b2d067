"""Delivery rules on the real stack: templates, consent, cap, quiet hours, kill switch, in-app."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from activities.sending import DeliveryPolicy, SendingActivities
from activities.suppression import QuietHours
from starter.cli import main
from tests.conftest import renderer
from tests.delivery.journeys import Inbox, Promo

TEMPLATES = Path(__file__).parent / "templates"
DAY, MINUTE = timedelta(days=1), timedelta(minutes=1)
SECRET = "test-secret"


def sending(store, **policy: object) -> SendingActivities:
    rules = {"quiet_hours": None, "frequency_cap": 100, "secret_key": SECRET, **policy}
    return SendingActivities(store, renderer(TEMPLATES), policy=DeliveryPolicy(**rules))


def steps(stack, user: str) -> list[tuple[str, str, str | None]]:
    [run] = stack.runs(user)
    return [(s.name, s.status, s.detail) for s in stack.store.steps(run.run_id) if s.kind == "send"]


async def test_a_message_renders_with_profile_and_event_and_escapes_their_html(stack_for, store):
    stack = await stack_for(Promo, sending=sending(store))
    user = stack.user(first_name="<b>Ada</b>")
    await stack.track("Promo Requested", user, {"product": "<script>alert(1)</script>"})
    await stack.advance("t_promo", user, timedelta(seconds=1))
    [first] = stack.outbox(user)
    assert first.subject == "Your offer: 10% off"
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in first.body_html
    assert "<script>" not in first.body_html
    assert "Hi &lt;b&gt;Ada&lt;/b&gt;" in first.body_html
    assert "/u/" in first.body_html and "/u/" in first.body_text  # the unsubscribe link
    assert first.body_text.startswith("Hi <b>Ada</b>, 10% off")  # plain text is not escaped


async def test_a_missing_variable_never_sends_a_broken_email_and_the_journey_goes_on(
    stack_for, store
):
    stack = await stack_for(Promo, sending=sending(store))
    user = stack.user(first_name="Ada")
    await stack.track("Promo Requested", user, {"product": "chair"})
    await stack.advance("t_promo", user, DAY + MINUTE)  # "second" needs coupon_code
    await stack.advance("t_promo", user, DAY)
    assert [m.template for m in stack.outbox(user)] == ["first", "third"]
    name, status, detail = steps(stack, user)[1]
    assert (name, status) == ("second", "failed")
    assert "coupon_code" in detail and "is undefined" in detail


async def test_the_frequency_cap_skips_marketing_but_not_transactional_mail(stack_for, store):
    stack = await stack_for(Promo, sending=sending(store, frequency_cap=1))
    user = stack.user(first_name="Ada")
    await stack.track("Promo Requested", user, {"product": "chair"})
    for _ in range(3):
        await stack.advance("t_promo", user, DAY + MINUTE)
    assert [m.template for m in stack.outbox(user)] == ["first", "receipt"]
    assert [(n, s, d) for n, s, d in steps(stack, user) if s == "skipped"] == [
        ("second", "skipped", "frequency_cap"),
        ("third", "skipped", "frequency_cap"),
    ]


async def test_an_unsubscribed_or_non_consenting_user_gets_no_marketing(stack_for, store):
    stack = await stack_for(Promo, sending=sending(store))
    gone = stack.user(first_name="A", unsubscribed=True)
    withdrawn = stack.user(first_name="B", marketing_consent=False)
    for user in (gone, withdrawn):
        await stack.track("Promo Requested", user, {"product": "chair"})
        await stack.advance("t_promo", user, timedelta(seconds=1))
    assert stack.outbox(gone) == [] and stack.outbox(withdrawn) == []
    assert steps(stack, gone)[0] == ("first", "skipped", "unsubscribed")
    assert steps(stack, withdrawn)[0] == ("first", "skipped", "no_consent")


def window_around_now(zone: str) -> tuple[str, datetime]:
    """Quiet hours from an hour ago to two hours ahead in `zone`, and when they end (UTC)."""
    local = datetime.now(ZoneInfo(zone))
    start, end = local - timedelta(hours=1), local + timedelta(hours=2)
    return f"{start:%H:%M}-{end:%H:%M}", end.replace(second=0, microsecond=0).astimezone(UTC)


async def test_quiet_hours_hold_the_send_until_morning_in_the_users_timezone(stack_for, store):
    window, ends = window_around_now("Asia/Tokyo")
    stack = await stack_for(Promo, sending=sending(store, quiet_hours=QuietHours.parse(window)))
    tokyo = stack.user(first_name="T", timezone="Asia/Tokyo")
    await stack.track("Promo Requested", tokyo, {"product": "chair"})
    state = await stack.state("t_promo", tokyo)
    assert state.step == "quiet hours before first"
    assert abs((state.next_wakeup - ends).total_seconds()) < 1
    await stack.advance("t_promo", tokyo, timedelta(hours=1))
    assert stack.outbox(tokyo) == []
    await stack.advance("t_promo", tokyo, timedelta(hours=1, minutes=1))
    assert [m.template for m in stack.outbox(tokyo)] == ["first"]


async def test_the_goal_ends_a_journey_waiting_out_quiet_hours(stack_for, store):
    window, _ = window_around_now("UTC")
    stack = await stack_for(Promo, sending=sending(store, quiet_hours=QuietHours.parse(window)))
    user = stack.user(first_name="U")
    await stack.track("Promo Requested", user, {"product": "chair"})
    assert (await stack.state("t_promo", user)).step == "quiet hours before first"
    await stack.track("Order Completed", user, {"revenue": 30})
    assert (await stack.result("t_promo", user)).outcome == "converted"
    assert stack.outbox(user) == []


async def test_pause_stops_sends_and_resume_restarts_them_with_journeys_in_place(
    stack_for, store, monkeypatch, capsys
):
    monkeypatch.setenv("JOURNEYS_DATABASE_URL", store.url)
    monkeypatch.setenv("JOURNEYS_JOURNEY_MODULES", '["tests.delivery.journeys"]')
    stack = await stack_for(Promo, sending=sending(store))
    user = stack.user(first_name="P")
    await stack.track("Promo Requested", user, {"product": "chair"})
    await stack.advance("t_promo", user, timedelta(seconds=1))

    assert main(["pause", "t_promo", "--reason", "wrong price in template"]) == 0
    assert "t_promo paused" in capsys.readouterr().out
    await stack.advance("t_promo", user, DAY)
    assert steps(stack, user)[1] == ("second", "skipped", "paused")
    assert (await stack.state("t_promo", user)).step.startswith("sleep after")  # still running

    assert main(["resume", "t_promo"]) == 0
    await stack.advance("t_promo", user, DAY)
    assert [m.template for m in stack.outbox(user)] == ["first", "third"]
    assert main(["pause", "no_such_journey"]) == 2


async def test_in_app_messages_are_listed_for_the_app_and_marked_read(api_for, store):
    api = await api_for(Inbox, sending=sending(store))
    user = api.stack.user()
    await api.stack.track("Invite Sent", user, {"invitee": "c@example.test"})
    await api.stack.result("t_inbox", user)  # it sends, then ends
    listed = (await api.http.get(f"/v1/users/{user}/messages")).json()
    assert [(m["template"], m["subject"], m["readAt"]) for m in listed] == [
        ("team_plan", "Try the team plan", None)
    ]
    assert "You invited 3 people" in listed[0]["html"]
    mark = f"/v1/users/{user}/messages/{listed[0]['id']}/read"
    assert (await api.http.post(mark)).status_code == 204
    assert (await api.http.get(f"/v1/users/{user}/messages")).json()[0]["readAt"] is not None
    assert (
        await api.http.post(f"/v1/users/someone-else/messages/{listed[0]['id']}/read")
    ).status_code == 404
    assert api.stack.outbox(user)[0].channel == "in_app"


@pytest.mark.parametrize("step,expected", [("first", 0), ("second", 1)])
def test_preview_renders_with_the_users_real_data_or_shows_the_error(
    store, monkeypatch, capsys, step, expected
):
    monkeypatch.setenv("JOURNEYS_DATABASE_URL", store.url)
    monkeypatch.setenv("JOURNEYS_JOURNEY_MODULES", '["tests.delivery.journeys"]')
    monkeypatch.setenv("JOURNEYS_TEMPLATES_DIR", str(TEMPLATES))
    store.upsert_profile("ada", email="ada@example.test", traits={"first_name": "Ada"})
    store.receive(
        message_id="m1", user_id="ada", kind="track", at=datetime.now(UTC),
        event="Promo Requested", properties={"product": "lamp"},
    )  # fmt: skip
    monkeypatch.setattr(Promo, "preview_context", classmethod(lambda cls, event: {"offer": "5%"}))
    assert main(["preview", "t_promo", step, "--user", "ada"]) == expected
    out, err = capsys.readouterr()
    if expected == 0:
        assert "To:      ada@example.test" in out
        assert "Subject: Your offer: 5%" in out
        assert "Hi Ada, 5% on lamp" in out
    else:
        assert "coupon_code" in err and "undefined" in err


async def test_caps_are_per_channel(stack_for, store):
    stack = await stack_for(Inbox, sending=sending(store, channel_caps={"in_app": 0}))
    user = stack.user()
    await stack.track("Invite Sent", user, {})
    await stack.result("t_inbox", user)  # it sends (or skips), then ends
    assert steps(stack, user) == [("team_plan", "skipped", "frequency_cap")]
    assert store.marketing_sent_since(user, datetime.now(UTC) - DAY, "email") == 0


async def test_the_outbox_page_shows_what_was_sent_to_key_holders_only(api_for, store):
    import httpx

    api = await api_for(Promo, sending=sending(store))
    user = api.stack.user(first_name="Ada")
    await api.stack.track("Promo Requested", user, {"product": "chair"})
    await api.stack.advance("t_promo", user, timedelta(seconds=1))
    async with httpx.AsyncClient(base_url=api.url) as browser:
        assert (await browser.get("/outbox")).status_code == 401
        assert (await browser.post("/signin", data={"key": "nope"})).status_code == 401
        assert (await browser.post("/signin", data={"key": api.key})).status_code == 303
        page = await browser.get("/outbox")  # with the session cookie of that sign-in
        assert page.status_code == 200
        assert f"{user}@example.test" in page.text and "Your offer: 10% off" in page.text
