"""Subscription state lives apart from traits: an identify can unsubscribe a user (as senders
write it, "true" too) but never subscribe them again; the authenticated subscription call can."""

from __future__ import annotations

from datetime import timedelta

from tests.journeys.conftest import HOUR, Shop
from workflows.journeys import CartRecovery

MINUTE = timedelta(minutes=1)
CHAIR = {"product_id": "chair", "name": "Oak chair", "price": 120}


def unsubscribed_from(shop: Shop, user: str) -> str | None:
    """Who unsubscribed the user, as our database keeps it apart from traits (None: subscribed)."""
    profile = shop.api.stack.store.get_profile(user)
    return None if profile.email_unsubscribed_at is None else profile.email_unsubscribed_from


async def test_an_identify_cannot_resubscribe_but_the_subscription_call_can(shop_for):
    shop: Shop = await shop_for(CartRecovery)
    user = shop.user("cart_recovery")
    await shop.identify(user)
    assert unsubscribed_from(shop, user) is None

    await shop.identify(user, unsubscribed="true")  # a string, as many CRMs send it
    assert unsubscribed_from(shop, user) == "identify"
    await shop.identify(user, unsubscribed=False)  # overwriting the trait changes nothing
    assert unsubscribed_from(shop, user) == "identify"

    await shop.track(user, "Product Added", CHAIR)
    await shop.advance("cart_recovery", user, 61 * MINUTE)
    [run] = shop.api.stack.runs(user)
    [reminder] = [s for s in shop.api.stack.store.steps(run.run_id) if s.kind == "send"]
    assert (reminder.status, reminder.detail) == ("skipped", "unsubscribed")

    back = await shop.api.http.put(f"/v1/users/{user}/subscription", json={"email": True})
    assert back.status_code == 200 and back.json()["email"] is True
    await shop.advance("cart_recovery", user, 23 * HOUR)
    assert shop.templates(user) == ["social_proof"]  # subscribed again: the next email goes


async def test_the_subscription_call_needs_the_key_and_a_boolean(shop_for):
    shop: Shop = await shop_for(CartRecovery)
    user = shop.user("cart_recovery")
    wrong = await shop.api.http.put(f"/v1/users/{user}/subscription", json={"email": "yes please"})
    assert wrong.status_code == 422
    bare = await shop.api.http.put(
        f"/v1/users/{user}/subscription",
        json={"email": True},
        headers={"Authorization": "Bearer not-the-key"},
    )
    assert bare.status_code == 401
