"""Cart recovery through the webhook: timings from the last cart change, goal, suppressions."""

from __future__ import annotations

from datetime import timedelta

from activities.store import OutboxMessage
from tests.journeys.conftest import DAY, HOUR, Shop
from workflows.journeys import CartRecovery

MINUTE = timedelta(minutes=1)
CHAIR = {"product_id": "chair", "name": "Oak chair", "price": 120, "rating": 4.8,
         "review_count": 212, "recent_buyers": 37}  # fmt: skip
LAMP = {"product_id": "lamp", "name": "Brass lamp", "price": 45}


async def test_three_emails_at_1h_24h_72h_after_the_cart_went_quiet(shop_for):
    shop: Shop = await shop_for(CartRecovery)
    user = shop.user("cart_recovery")
    await shop.identify(user, first_name="Ada")
    await shop.track(user, "Product Added", CHAIR)
    await shop.advance("cart_recovery", user, 30 * MINUTE)
    await shop.track(user, "Product Added", LAMP)  # a cart change restarts the hour

    await shop.advance("cart_recovery", user, 59 * MINUTE)
    assert shop.sent(user) == []
    await shop.advance("cart_recovery", user, MINUTE)
    [reminder] = shop.sent(user)
    assert reminder.template == "reminder"
    assert "Oak chair" in reminder.body_html and "Brass lamp" in reminder.body_html
    assert "Ada" in (reminder.subject or "")
    assert "%" not in (reminder.subject or "") + (reminder.body_text or "")  # no discount yet

    await shop.advance("cart_recovery", user, 23 * HOUR - MINUTE)
    assert shop.templates(user) == ["reminder"]
    await shop.advance("cart_recovery", user, MINUTE)  # 24 h after the last change
    social = shop.sent(user)[1]
    assert social.template == "social_proof"
    assert "37" in social.body_html  # recent buyers of the chair
    assert "COMEBACK10" not in social.body_html

    await shop.advance("cart_recovery", user, 48 * HOUR)  # 72 h after the last change
    incentive = shop.sent(user)[2]
    assert incentive.template == "incentive"
    assert "COMEBACK10" in incentive.body_html and "10%" in (incentive.subject or "")

    await shop.advance("cart_recovery", user, 4 * DAY)
    assert shop.templates(user) == ["reminder", "social_proof", "incentive"]
    assert (await shop.api.stack.result("cart_recovery", user, 30)).outcome == "completed"


async def test_an_order_ends_it_with_the_revenue_and_nothing_follows(shop_for):
    shop = await shop_for(CartRecovery)
    user = shop.user("cart_recovery")
    await shop.identify(user)
    await shop.track(user, "Product Added", CHAIR)
    await shop.advance("cart_recovery", user, 61 * MINUTE)
    await shop.advance("cart_recovery", user, 5 * HOUR)
    await shop.track(user, "Order Completed", {"revenue": 120.0, "order_id": "o1"})
    await shop.advance("cart_recovery", user, 7 * DAY)
    assert shop.templates(user) == ["reminder"]
    [run] = shop.api.stack.runs(user)
    assert (run.outcome, run.revenue) == ("converted", 120.0)


async def test_a_cart_under_the_minimum_value_is_suppressed(shop_for):
    shop = await shop_for(CartRecovery)
    user = shop.user("cart_recovery")
    await shop.identify(user)
    await shop.track(user, "Product Added", {"product_id": "socks", "price": 4, "quantity": 2})
    await shop.advance("cart_recovery", user, 61 * MINUTE)
    result = await shop.api.stack.result("cart_recovery", user)
    assert (result.outcome, result.reason) == ("suppressed", "cart_below_minimum")
    assert shop.sent(user) == []


async def test_a_cart_raised_above_the_minimum_before_it_went_quiet_gets_its_emails(shop_for):
    shop = await shop_for(CartRecovery)
    user = shop.user("cart_recovery")
    await shop.identify(user)
    await shop.track(user, "Product Added", {"product_id": "socks", "price": 4})
    await shop.track(user, "Product Added", {"product_id": "boots", "price": 80})
    await shop.advance("cart_recovery", user, 61 * MINUTE)
    assert shop.templates(user) == ["reminder"]


async def test_no_cart_journey_within_7_days_of_a_cart_email_in_either_group(shop_for):
    shop = await shop_for(CartRecovery)
    for group in ("treatment", "holdout"):
        user = shop.user("cart_recovery", group=group)
        await shop.identify(user)
        await shop.track(user, "Product Added", CHAIR)
        await shop.advance("cart_recovery", user, 61 * MINUTE)  # reminder (or held out)
        await shop.track(user, "Order Completed", {"revenue": 120})
        await shop.advance("cart_recovery", user, 7 * DAY)  # re-entry window over: closed
        await shop.api.stack.result("cart_recovery", user)

        await shop.track(user, "Product Added", LAMP)
        result = await shop.api.stack.result("cart_recovery", user)
        assert (result.outcome, result.reason) == ("suppressed", "cart_email_within_7_days")
    assert shop.templates(user) == []  # the held-out user never got one


async def test_a_cart_email_older_than_7_days_does_not_suppress(shop_for, store):
    shop = await shop_for(CartRecovery)
    user = shop.user("cart_recovery")
    await shop.identify(user)
    store.insert_once(
        OutboxMessage(
            idempotency_key=f"old-{user}", run_id="an-old-run", journey="cart_recovery",
            user_id=user, template="reminder", recipient=f"{user}@example.test",
            journey_time=OutboxMessage.model_fields["created_at"].default_factory() - 8 * DAY,
        )
    )  # fmt: skip
    await shop.track(user, "Product Added", CHAIR)
    await shop.advance("cart_recovery", user, 61 * MINUTE)
    assert [m.template for m in shop.sent(user) if m.run_id != "an-old-run"] == ["reminder"]
