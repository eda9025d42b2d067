"""Upgrade prompt: the third collaborator invited gets an in-app team plan suggestion."""

from __future__ import annotations

from tests.journeys.conftest import DAY, Shop
from workflows.journeys import UpgradePrompt


async def test_the_third_invite_puts_a_team_plan_message_in_the_inbox(shop_for):
    shop: Shop = await shop_for(UpgradePrompt)
    user = shop.user("upgrade_prompt")
    await shop.identify(user, plan="starter")
    first = await shop.track(user, "Invite Sent", {"invitee_email": "a@example.test"})
    second = await shop.track(user, "Invite Sent", {"invitee_email": "b@example.test"})
    assert [j["action"] for j in first["journeys"] + second["journeys"]] == [
        "not_running", "not_running",
    ]  # fmt: skip
    third = await shop.track(user, "Invite Sent", {"invitee_email": "c@example.test"})
    assert [j["action"] for j in third["journeys"]] == ["triggered"]
    await shop.api.stack.state("upgrade_prompt", user)

    inbox = (await shop.api.http.get(f"/v1/users/{user}/messages")).json()
    [message] = inbox["messages"] if isinstance(inbox, dict) else inbox
    assert "team" in str(message).lower()
    assert [m.channel for m in shop.sent(user)] == ["in_app"]

    fourth = await shop.track(user, "Invite Sent", {"invitee_email": "d@example.test"})
    assert [j["action"] for j in fourth["journeys"]] == ["signalled"]  # no second prompt
    await shop.advance("upgrade_prompt", user, 2 * DAY)
    await shop.track(user, "Plan Upgraded", {"plan": "team", "revenue": 49})
    result = await shop.outcome("upgrade_prompt", user)
    assert result.outcome == "converted"
    assert len(shop.sent(user)) == 1


async def test_a_user_on_the_team_plan_is_not_prompted(shop_for):
    shop = await shop_for(UpgradePrompt)
    user = shop.user("upgrade_prompt")
    await shop.identify(user, plan="team")
    for _ in range(3):
        answer = await shop.track(user, "Invite Sent")
    assert [j["action"] for j in answer["journeys"]] == ["not_running"]
    assert shop.api.stack.runs(user) == []
