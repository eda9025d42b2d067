"""The `remove` signal: an operator takes a user out of a journey at any point, and the run
ends at once with outcome "exited", reason as given, and sends nothing more."""

from __future__ import annotations

from datetime import timedelta

from tests.engine.sample_journeys import Cart, Welcome
from workflows.models import Removal


async def test_removal_during_a_sleep_ends_the_journey_and_sends_nothing_more(stack_for):
    stack = await stack_for(Welcome)
    user = stack.user()
    await stack.track("Signed Up", user)
    await stack.advance("t_welcome", user, timedelta(hours=2))
    assert [m.template for m in stack.outbox(user)] == ["welcome"]

    await stack.handle("t_welcome", user).signal("remove", Removal())
    result = await stack.result("t_welcome", user)
    assert (result.outcome, result.reason) == ("exited", "removed")
    [run] = stack.runs(user)
    assert (run.outcome, run.outcome_reason) == ("exited", "removed")
    assert [m.template for m in stack.outbox(user)] == ["welcome"]


async def test_removal_while_qualifying_never_enters_the_user(stack_for):
    stack = await stack_for(Cart)
    user = stack.user()
    await stack.track("Product Added", user, {"sku": "chair"})
    await stack.handle("t_cart", user).signal("remove", Removal(reason="support_request"))
    result = await stack.result("t_cart", user)
    assert result.outcome in ("exited", "not_entered")
    assert result.reason == "support_request"
    assert stack.outbox(user) == []
