"""Onboarding through the webhook: welcome at once, tips on days 2 and 5, activation ends it."""

from __future__ import annotations

from datetime import timedelta

from tests.journeys.conftest import DAY, Shop
from workflows.journeys import Onboarding

MINUTE = timedelta(minutes=1)


async def test_welcome_at_once_then_tips_on_day_2_and_day_5(shop_for):
    shop: Shop = await shop_for(Onboarding)
    user = shop.user("onboarding")
    await shop.identify(user, first_name="Grace")
    await shop.track(user, "Signed Up", {"plan": "starter"})
    await shop.api.stack.state("onboarding", user)
    [welcome] = shop.sent(user)
    assert welcome.template == "welcome" and not welcome.marketing
    assert "Grace" in (welcome.subject or "") + (welcome.body_text or "")

    await shop.advance("onboarding", user, 2 * DAY - MINUTE)
    assert shop.templates(user) == ["welcome"]
    await shop.advance("onboarding", user, MINUTE)
    assert shop.templates(user) == ["welcome", "first_tips"]
    await shop.advance("onboarding", user, 3 * DAY)
    assert shop.templates(user) == ["welcome", "first_tips", "second_tips"]


async def test_activation_stops_the_tips_at_once(shop_for):
    shop = await shop_for(Onboarding)
    user = shop.user("onboarding")
    await shop.identify(user)
    await shop.track(user, "Signed Up")
    await shop.advance("onboarding", user, 3 * DAY)
    await shop.track(user, "Activated")
    result = await shop.api.stack.result("onboarding", user)
    assert (result.outcome, result.reason) == ("converted", "Activated")
    assert shop.templates(user) == ["welcome", "first_tips"]
