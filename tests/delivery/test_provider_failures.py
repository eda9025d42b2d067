"""A real provider's answers inside a running journey: retry later, refuse, or too late."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from pydantic import SecretStr

from activities.providers import ProviderConfig, create_provider
from activities.sending import DeliveryPolicy, SendingActivities
from tests.conftest import renderer, serving
from tests.delivery.journeys import Promo, Urgent
from tests.delivery.test_rules import TEMPLATES, steps
from tests.providers.servers import Script, contract_app
from tests.providers.test_http_providers import KEY, PROVIDERS

OK = PROVIDERS["postmark"][2]


async def journey_on_postmark(stack_for, store, script: Script, journey=Promo):
    path, check, _, _ = PROVIDERS["postmark"]
    server = serving(contract_app(script, path, check))
    url = await server.__aenter__()
    provider = create_provider(
        ProviderConfig(provider="postmark", api_key=SecretStr(KEY), base_url=url)
    )
    policy = DeliveryPolicy(quiet_hours=None, frequency_cap=100, secret_key="s")
    stack = await stack_for(
        journey, sending=SendingActivities(store, renderer(TEMPLATES), provider, policy)
    )
    user = stack.user(first_name="Ada")
    await stack.track(journey.trigger.events[0], user, {"product": "lamp"})
    return stack, user, server


async def test_a_busy_provider_is_retried_after_its_retry_after_and_sends_once(stack_for, store):
    script = Script().then(503, {}, {"Retry-After": "1"}).then(*OK)
    stack, user, server = await journey_on_postmark(stack_for, store, script)
    try:
        for _ in range(100):  # one read per look: the 503 releases the claimed row meanwhile
            outbox = stack.outbox(user)
            if outbox and outbox[0].status == "sent":
                break
            await asyncio.sleep(0.1)
        [message] = stack.outbox(user)
        assert (message.status, message.provider, message.provider_message_id) == (
            "sent", "postmark", "pm-1"
        )  # fmt: skip
        assert len(script.seen) == 2
        headers = script.seen[1].json()["Headers"]
        assert {h["Name"] for h in headers} == {"List-Unsubscribe", "List-Unsubscribe-Post"}
    finally:
        await server.__aexit__(None, None, None)


async def test_an_inactive_recipient_is_recorded_suppressed_and_the_journey_goes_on(
    stack_for, store
):
    script = Script().then(422, {"ErrorCode": 406, "Message": "Inactive recipient"})
    stack, user, server = await journey_on_postmark(stack_for, store, script)
    try:
        await stack.advance("t_promo", user, timedelta(seconds=1))
        name, status, detail = steps(stack, user)[0]
        assert (name, status) == ("first", "failed") and "ErrorCode 406" in detail
        assert stack.store.get_profile(user).traits["email_suppressed"] is True
        await stack.advance("t_promo", user, timedelta(days=1))
        assert steps(stack, user)[1] == ("second", "skipped", "address_suppressed")
        assert len(script.seen) == 1  # never asked again for this address
    finally:
        await server.__aexit__(None, None, None)


async def test_a_message_that_cannot_go_out_in_time_is_skipped_as_stale(stack_for, store):
    script = Script().then(503, {}, {"Retry-After": "1"})  # down for good
    stack, user, server = await journey_on_postmark(stack_for, store, script, Urgent)
    try:
        for _ in range(100):  # retries a second apart: the first attempt after 2 s gives up
            runs = stack.runs(user)
            if runs and stack.store.steps(runs[0].run_id):
                break
            await asyncio.sleep(0.1)
        assert steps(stack, user) == [("first", "skipped", "stale")]
        assert stack.outbox(user) == []
        assert len(script.seen) >= 2  # retried, then given up, never sent late
    finally:
        await server.__aexit__(None, None, None)
