"""The webhook channel inside a running journey: signed, once, with the journey's values."""

from __future__ import annotations

from pydantic import SecretStr

from activities.providers import ProviderConfig, create_provider
from activities.sending import DeliveryPolicy, SendingActivities
from tests.conftest import renderer, serving
from tests.delivery.journeys import AtRisk
from tests.delivery.test_rules import TEMPLATES
from tests.providers.servers import Script, contract_app, standard_webhook_check

SECRET = "whsec_" + "c3VjY2Vzcy10ZWFtLWtleQ=="


async def test_an_at_risk_account_is_flagged_once_to_the_success_teams_tool(stack_for, store):
    script = Script().then(204)
    async with serving(
        contract_app(script, "/hooks/journeys", standard_webhook_check(SECRET))
    ) as url:
        webhook = create_provider(
            ProviderConfig(
                provider="webhook",
                webhook_url=f"{url}/hooks/journeys",
                webhook_secret=SecretStr(SECRET),
            )
        )
        policy = DeliveryPolicy(quiet_hours=None, secret_key="s")
        sending = SendingActivities(store, renderer(TEMPLATES), None, policy, webhook)
        stack = await stack_for(AtRisk, sending=sending)
        user = stack.user()  # the email channel is not involved: no address needed either
        await stack.track("Usage Dropped", user, {"drop": 0.6})
        assert (await stack.result("t_at_risk", user)).messages_sent == 1
    [request] = script.seen  # signed (the stand-in refuses a bad signature), sent once
    body = request.json()
    assert body["type"] == "journey.message"
    assert body["data"]["user_id"] == user and body["data"]["properties"]["seats"] == 12
    [logged] = stack.outbox(user)
    assert (logged.channel, logged.status, logged.provider) == ("webhook", "sent", "webhook")
