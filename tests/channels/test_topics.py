"""Subscription topics, the preference page and opt-in consent, over real HTTP on the real stack.

A recipient reaches the page from the link in a rendered email, with no login: the signed link
is the credential. What they choose there, or what a mail client's one-click POST does, must
show in what the next sends do."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import httpx
from pydantic import SecretStr

from activities.sending import DeliveryPolicy, SendingActivities
from tests.channels.journeys import Offers, Updates
from tests.conftest import renderer
from tests.delivery.test_rules import steps

TEMPLATES = Path(__file__).parent / "templates"
SECRET = "test-secret-for-channel-tests"
ONE_CLICK = {"Content-Type": "application/x-www-form-urlencoded"}


def sending(store, **policy: object) -> SendingActivities:
    rules = {"quiet_hours": None, "frequency_cap": 100, "secret_key": SECRET, **policy}
    return SendingActivities(store, renderer(TEMPLATES), policy=DeliveryPolicy(**rules))


def link(message) -> str:
    return re.search(r"/u/[\w.-]+", message.body_text).group(0)


async def test_one_click_leaves_the_messages_topic_and_keeps_the_others(api_for, store):
    api = await api_for(Offers, Updates, sending=sending(store), secret_key=SecretStr(SECRET))
    user = api.stack.user(first_name="Ada")
    await api.stack.track("Offer Requested", user)
    await api.stack.advance("t_offers", user, timedelta(seconds=1))
    [deal] = api.stack.outbox(user)

    async with httpx.AsyncClient(base_url=api.url) as mail_client:  # no key, no cookies
        done = await mail_client.post(
            link(deal), content=b"List-Unsubscribe=One-Click", headers=ONE_CLICK
        )
    assert done.status_code == 200 and "about offers" in done.text
    assert store.get_profile(user).email_unsubscribed_at is None  # not everything
    state = (await api.http.get(f"/v1/users/{user}/subscription")).json()
    assert state["email"] is True and state["topics"] == {"offers": False}

    await api.stack.track("Update Shipped", user)  # another topic still arrives
    await api.stack.result("t_updates", user)
    await api.stack.advance("t_offers", user, timedelta(days=1, minutes=1))
    assert [m.template for m in api.stack.outbox(user)] == ["deal", "news"]
    run = next(r for r in api.stack.runs(user) if r.journey == "t_offers")
    sends = [(s.name, s.status, s.detail) for s in store.steps(run.run_id) if s.kind == "send"]
    assert sends[1] == ("deal_again", "skipped", "topic_unsubscribed")


async def test_the_preference_page_leaves_and_rejoins_topics_or_everything(api_for, store):
    api = await api_for(Offers, Updates, sending=sending(store), secret_key=SecretStr(SECRET))
    user = api.stack.user(first_name="Ada")
    await api.stack.track("Offer Requested", user)
    await api.stack.advance("t_offers", user, timedelta(seconds=1))
    path = link(api.stack.outbox(user)[0])

    async with httpx.AsyncClient(base_url=api.url) as browser:
        page = (await browser.get(path)).text
        assert "Unsubscribe from offers" in page
        assert 'value="offers" checked' in page and 'value="product_updates" checked' in page
        assert store.channel_subscriptions(user) == {}  # looking changes nothing

        saved = await browser.post(
            path, content=b"scope=preferences&topic=offers", headers=ONE_CLICK
        )
        assert saved.status_code == 200 and "product updates" in saved.text
        assert store.channel_subscriptions(user) == {("email", "product_updates"): False}
        page = (await browser.get(path)).text
        assert 'value="product_updates">' in page  # shown unticked now

        await browser.post(
            path, content=b"scope=preferences&topic=offers&topic=product_updates", headers=ONE_CLICK
        )
        assert store.channel_subscriptions(user) == {("email", "product_updates"): True}

        everything = await browser.post(
            path, content=b"List-Unsubscribe=One-Click&scope=all", headers=ONE_CLICK
        )
        assert "no more marketing emails" in everything.text
        assert store.get_profile(user).email_unsubscribed_at is not None
        assert "You are unsubscribed" in (await browser.get(path)).text

        huge = await browser.post(path, content=b"topic=x&" * 4000, headers=ONE_CLICK)
        assert huge.status_code == 413

    await api.stack.track("Update Shipped", user)
    await api.stack.result("t_updates", user)
    run = next(r for r in api.stack.runs(user) if r.journey == "t_updates")
    [news] = [s for s in store.steps(run.run_id) if s.kind == "send"]
    assert (news.status, news.detail) == ("skipped", "unsubscribed")


async def test_opt_in_consent_needs_an_explicit_yes_per_channel(api_for, store):
    api = await api_for(
        Updates,
        sending=sending(store, consent="opt_in"),
        secret_key=SecretStr(SECRET),
        consent="opt_in",
    )
    silent = api.stack.user(first_name="Ada")
    said_yes = api.stack.user(first_name="Grace", email_consent=True)
    asked = api.stack.user(first_name="Alan")
    assert (await api.http.get(f"/v1/users/{silent}/subscription")).json()["email"] is False
    answer = await api.http.put(f"/v1/users/{asked}/subscription", json={"email": True})
    assert answer.status_code == 200 and answer.json()["email"] is True

    for user in (silent, said_yes, asked):
        await api.stack.track("Update Shipped", user)
        await api.stack.result("t_updates", user)
    assert sorted(m.user_id for m in store.outbox()) == sorted([said_yes, asked])
    assert steps(api.stack, silent) == [("news", "skipped", "no_consent")]


async def test_the_subscription_api_refuses_what_it_cannot_mean(api_for, store):
    api = await api_for(Updates, sending=sending(store), secret_key=SecretStr(SECRET))
    for body in ({}, {"topics": {"Bad Topic": False}}, {"sms": "yes"}, {"fax": True}):
        answer = await api.http.put("/v1/users/u1/subscription", json=body)
        assert answer.status_code == 422, (body, answer.text)
    assert store.channel_subscriptions("u1") == {}
    answer = await api.http.put(
        "/v1/users/u1/subscription", json={"sms": True, "push": False, "topics": {"offers": False}}
    )
    state = answer.json()
    assert (state["sms"], state["push"], state["topics"]) == (True, False, {"offers": False})
