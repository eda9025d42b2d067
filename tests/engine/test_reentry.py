"""Re-entry: a journey refuses to start again for a user within its window, and allows it after."""

from __future__ import annotations

from datetime import timedelta

from tests.engine.sample_journeys import Cart, OnceAWeekCart

MINUTE = timedelta(minutes=1)
DAY = timedelta(days=1)


async def test_reentry_is_refused_inside_the_window_and_allowed_after(stack_for):
    stack = await stack_for(OnceAWeekCart)
    user = stack.user()
    await stack.track("Product Added", user, {"sku": "a"})
    await stack.advance("t_cart_reentry", user, 61 * MINUTE)
    await stack.track("Order Completed", user)
    state = await stack.state("t_cart_reentry", user)
    assert (state.outcome, state.step) == ("converted", "cooldown")

    await stack.advance("t_cart_reentry", user, 3 * DAY)
    await stack.track("Product Added", user, {"sku": "b"})  # day 3: inside the 7-day window
    await stack.advance("t_cart_reentry", user, 2 * DAY)
    assert [m.template for m in stack.outbox(user)] == ["reminder"]
    assert len(stack.runs(user)) == 1

    await stack.advance("t_cart_reentry", user, 2 * DAY + MINUTE)  # past day 7: closed
    assert (await stack.result("t_cart_reentry", user)).outcome == "converted"
    await stack.track("Product Added", user, {"sku": "c"})
    await stack.advance("t_cart_reentry", user, 61 * MINUTE)
    assert [m.template for m in stack.outbox(user)] == ["reminder", "reminder"]
    assert [m.context["skus"] for m in stack.outbox(user)] == [["a"], ["c"]]
    assert len(stack.runs(user)) == 2


async def test_without_a_reentry_window_a_new_trigger_after_the_end_starts_again(stack_for):
    stack = await stack_for(Cart)
    user = stack.user()
    await stack.track("Product Added", user, {"sku": "a"})
    await stack.track("Order Completed", user)
    assert (await stack.result("t_cart", user)).outcome == "converted"
    await stack.track("Product Added", user, {"sku": "b"})
    await stack.advance("t_cart", user, 61 * MINUTE)
    assert [m.context["skus"] for m in stack.outbox(user)] == [["b"]]
    assert [r.outcome for r in stack.runs(user)] == ["converted", None]
