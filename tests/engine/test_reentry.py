"""Re-entry and closing: a journey's workflow closes the moment its outcome is known, and a
trigger inside the re-entry window starts a run that the entry refuses, recorded with its reason.

Each journey runs on its own virtual clock, so "8 days later" for a second run is set up by
moving the first entry back 8 days in our database, which is where the window is read from.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update
from temporalio.client import WorkflowExecutionStatus

from activities.store import JourneyRun
from tests.engine.sample_journeys import Cart, OnceAWeekCart
from workflows.identity import JOURNEY_STEP

MINUTE = timedelta(minutes=1)
DAY = timedelta(days=1)


def move_entries_back(stack, user: str, by: timedelta) -> None:
    runs = JourneyRun.__table__  # type: ignore[attr-defined]
    with stack.store.engine.begin() as conn:
        for run in stack.runs(user):
            conn.execute(
                update(runs)
                .where(runs.c.run_id == run.run_id)
                .values(entered_at=run.entered_at - by)
            )


async def test_the_workflow_closes_as_soon_as_the_goal_arrives(stack_for):
    stack = await stack_for(OnceAWeekCart)
    user = stack.user()
    await stack.track("Product Added", user, {"sku": "a"})
    await stack.advance("t_cart_reentry", user, 61 * MINUTE)
    await stack.track("Order Completed", user)

    result = await stack.result("t_cart_reentry", user, timeout=10)
    assert result.outcome == "converted"
    described = await stack.handle("t_cart_reentry", user).describe()
    assert described.status == WorkflowExecutionStatus.COMPLETED  # not Running in a cooldown
    assert described.typed_search_attributes.get(JOURNEY_STEP) == "done"


async def test_a_trigger_inside_the_window_is_refused_and_recorded_and_allowed_after(stack_for):
    stack = await stack_for(OnceAWeekCart)
    user = stack.user()
    await stack.track("Product Added", user, {"sku": "a"})
    await stack.advance("t_cart_reentry", user, 61 * MINUTE)
    await stack.track("Order Completed", user)
    assert (await stack.result("t_cart_reentry", user)).outcome == "converted"
    [first] = stack.runs(user)

    await stack.track("Product Added", user, {"sku": "b"})  # inside the 7-day window
    refused = await stack.result("t_cart_reentry", user)
    assert (refused.outcome, refused.reason) == ("not_entered", "reentry_window")
    assert [r.run_id for r in stack.runs(user)] == [first.run_id]  # no run, no group
    [refusal] = stack.store.refusals(user_id=user)
    assert (refusal.journey, refusal.reason, refusal.entry_event) == (
        "t_cart_reentry",
        "reentry_window",
        "Product Added",
    )
    assert refusal.last_entered_at == first.entered_at

    move_entries_back(stack, user, 8 * DAY)  # the first entry is now 8 days old
    await stack.track("Product Added", user, {"sku": "c"})
    await stack.advance("t_cart_reentry", user, 61 * MINUTE)
    assert [m.context["skus"] for m in stack.outbox(user)] == [["a"], ["c"]]
    assert len(stack.runs(user)) == 2
    assert len(stack.store.refusals(user_id=user)) == 1


async def test_a_suppressed_entry_opens_no_window(stack_for):
    stack = await stack_for(OnceAWeekCart)
    user = stack.user()
    await stack.track("Product Added", user, {"sku": "a"})
    await stack.track("Product Removed", user, {"sku": "a"})
    await stack.advance("t_cart_reentry", user, 61 * MINUTE)
    result = await stack.result("t_cart_reentry", user)
    assert (result.outcome, result.reason) == ("exited", "cart_emptied")
    runs = JourneyRun.__table__  # type: ignore[attr-defined]
    with stack.store.engine.begin() as conn:  # as if the entry had been suppressed
        conn.execute(update(runs).where(runs.c.user_id == user).values(outcome="suppressed"))

    await stack.track("Product Added", user, {"sku": "b"})
    await stack.advance("t_cart_reentry", user, 61 * MINUTE)
    assert [m.context["skus"] for m in stack.outbox(user)] == [["b"]]
    assert stack.store.refusals(user_id=user) == []


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
