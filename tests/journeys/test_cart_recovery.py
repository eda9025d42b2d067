"""Cart recovery through the webhook: timings from the last cart change, goal, suppressions."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from activities.store import JourneyRun, OutboxMessage
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

    await shop.advance("cart_recovery", user, 4 * DAY + HOUR + MINUTE)  # 7 days after entry
    assert shop.templates(user) == ["reminder", "social_proof", "incentive"]
    assert (await shop.api.stack.result("cart_recovery", user, 30)).outcome == "completed"


async def test_the_shopper_is_entered_only_once_the_cart_has_been_left_an_hour(shop_for):
    shop = await shop_for(CartRecovery)
    user = shop.user("cart_recovery")
    await shop.identify(user)
    await shop.track(user, "Product Added", CHAIR)
    await shop.advance("cart_recovery", user, 59 * MINUTE)
    state = await shop.api.stack.state("cart_recovery", user)
    assert (state.step, state.group) == ("qualifying", None)  # what the Temporal UI shows
    assert shop.api.stack.runs(user) == []  # no entry, no group yet

    await shop.advance("cart_recovery", user, 2 * MINUTE)
    [run] = shop.api.stack.runs(user)
    state = await shop.api.stack.state("cart_recovery", user)
    assert state.group == run.group == "treatment"
    assert run.entered_at - state.entered_at < timedelta(seconds=5)


async def test_a_purchase_inside_the_hour_means_the_cart_was_never_abandoned(shop_for):
    shop = await shop_for(CartRecovery)
    for group in ("treatment", "holdout"):
        user = shop.user("cart_recovery", group=group)
        await shop.identify(user)
        await shop.track(user, "Product Added", CHAIR)
        await shop.advance("cart_recovery", user, 10 * MINUTE)
        await shop.track(user, "Order Completed", {"revenue": 120.0, "order_id": "o1"})

        result = await shop.api.stack.result("cart_recovery", user, timeout=10)
        assert (result.outcome, result.reason, result.group) == (
            "not_entered",
            "goal_before_entry",
            None,
        )
        # No group, no entry, no conversion, no revenue, no re-entry window: nothing at all.
        assert shop.api.stack.runs(user) == [] and shop.sent(user) == []
        assert shop.api.stack.store.refusals(user_id=user) == []

        await shop.track(user, "Product Added", LAMP)  # a new cart is a new chance
        await shop.advance("cart_recovery", user, 61 * MINUTE)
        assert [r.entry_event for r in shop.api.stack.runs(user)] == ["Product Added"]


async def test_a_cart_emptied_inside_the_hour_is_never_entered(shop_for):
    shop = await shop_for(CartRecovery)
    user = shop.user("cart_recovery")
    await shop.identify(user)
    await shop.track(user, "Product Added", CHAIR)
    await shop.advance("cart_recovery", user, 20 * MINUTE)
    await shop.track(user, "Product Removed", {"product_id": "chair"})
    await shop.advance("cart_recovery", user, 61 * MINUTE)  # an hour after the removal
    result = await shop.api.stack.result("cart_recovery", user)
    assert (result.outcome, result.reason) == ("not_entered", "trigger_not_met")
    assert shop.api.stack.runs(user) == [] and shop.sent(user) == []


async def test_an_order_ends_it_with_the_revenue_and_nothing_follows(shop_for):
    shop = await shop_for(CartRecovery)
    user = shop.user("cart_recovery")
    await shop.identify(user)
    await shop.track(user, "Product Added", CHAIR)
    await shop.advance("cart_recovery", user, 61 * MINUTE)
    await shop.advance("cart_recovery", user, 5 * HOUR)
    await shop.track(user, "Order Completed", {"revenue": 120.0, "order_id": "o1"})
    result = await shop.api.stack.result("cart_recovery", user, timeout=10)  # closes at once
    assert result.outcome == "converted"
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


async def test_no_cart_journey_within_7_days_of_a_cart_email_in_either_group(shop_for, store):
    shop = await shop_for(CartRecovery)
    for group in ("treatment", "holdout"):
        user = shop.user("cart_recovery", group=group)
        await shop.identify(user)
        await shop.track(user, "Product Added", CHAIR)
        await shop.advance("cart_recovery", user, 61 * MINUTE)  # reminder (or held out)
        await shop.track(user, "Order Completed", {"revenue": 120})
        await shop.api.stack.result("cart_recovery", user)

        await shop.track(user, "Product Added", LAMP)  # inside the 7-day re-entry window
        await shop.advance("cart_recovery", user, 61 * MINUTE)
        result = await shop.api.stack.result("cart_recovery", user)
        assert (result.outcome, result.reason) == ("not_entered", "reentry_window")
        [refusal] = store.refusals(journey="cart_recovery", user_id=user)
        assert refusal.reason == "reentry_window"

        # An older entry (re-entry window over) but a cart email (or held-out one) this week.
        runs = JourneyRun.__table__  # type: ignore[attr-defined]
        with store.engine.begin() as conn:
            for run in store.runs(user_id=user):
                conn.execute(
                    update(runs)
                    .where(runs.c.run_id == run.run_id)
                    .values(entered_at=run.entered_at - 8 * DAY)
                )
        await shop.track(user, "Product Added", LAMP | {"product_id": "lamp-2"})
        await shop.advance("cart_recovery", user, 61 * MINUTE)
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
