"""The goal ends a journey at once, whatever step it is in, and records the conversion."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError

from tests.engine.sample_journeys import Cart, Welcome
from workflows.engine import JourneyWorkflow
from workflows.models import JourneyInput

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)


async def test_goal_during_a_sleep_ends_the_journey_with_no_further_send(stack_for):
    stack = await stack_for(Cart)
    user = stack.user()
    await stack.track("Product Added", user, {"sku": "chair"})
    await stack.advance("t_cart", user, 61 * MINUTE)
    await stack.advance("t_cart", user, 5 * HOUR)  # sleeping before social proof
    await stack.track("Order Completed", user, {"order_id": "o1", "revenue": 129.5})
    result = await stack.result("t_cart", user)
    assert (result.outcome, result.reason, result.messages_sent) == (
        "converted",
        "Order Completed",
        1,
    )
    assert [m.template for m in stack.outbox(user)] == ["reminder"]
    [run] = stack.runs(user)
    assert run.outcome == "converted"
    assert run.revenue == 129.5
    assert run.messages_sent == 1
    assert run.step == "sleep after reminder"  # where it was when the goal arrived
    goal_offset = run.goal_at.replace(tzinfo=UTC) - run.entered_at.replace(tzinfo=UTC)
    assert 6 * HOUR <= goal_offset < 6 * HOUR + 2 * MINUTE


async def test_goal_while_waiting_for_inactivity_ends_it_before_any_send(stack_for):
    stack = await stack_for(Cart)
    user = stack.user()
    await stack.track("Product Added", user, {"sku": "chair"})
    await stack.advance("t_cart", user, 30 * MINUTE)
    await stack.track("Order Completed", user, {"total": "80.00"})
    result = await stack.result("t_cart", user)
    assert result.outcome == "converted"
    assert stack.outbox(user) == []
    assert stack.runs(user)[0].revenue == 80.0


async def test_goal_between_sends_stops_the_next_send(stack_for):
    stack = await stack_for(Welcome)
    user = stack.user()
    await stack.track("Signed Up", user)
    await stack.track("Activated", user)
    await stack.result("t_welcome", user)
    # The welcome may or may not have gone out before the goal landed; the tip never does.
    assert "tip" not in [m.template for m in stack.outbox(user)]
    assert stack.runs(user)[0].outcome == "converted"


async def test_goal_stamped_before_the_entry_event_does_not_end_the_journey(stack_for):
    stack = await stack_for(Cart)
    user = stack.user()
    entered = datetime.now(UTC)
    await stack.track("Product Added", user, {"sku": "chair"}, timestamp=entered)
    await stack.track("Order Completed", user, timestamp=entered - timedelta(hours=2))
    await stack.advance("t_cart", user, 61 * MINUTE)
    assert [m.template for m in stack.outbox(user)] == ["reminder"]
    assert (await stack.state("t_cart", user)).outcome is None


async def test_without_the_goal_the_journey_watches_until_its_window_closes(stack_for):
    stack = await stack_for(Welcome)
    user = stack.user()
    await stack.track("Signed Up", user)
    await stack.advance("t_welcome", user, 25 * HOUR)
    assert [m.template for m in stack.outbox(user)] == ["welcome", "tip"]
    state = await stack.state("t_welcome", user)
    assert state.step == "watching_goal"
    assert state.outcome is None

    await stack.advance("t_welcome", user, 24 * HOUR)  # day 2: still inside the 3-day window
    await stack.track("Activated", user)
    result = await stack.result("t_welcome", user)
    assert result.outcome == "converted"


async def test_a_journey_whose_window_closes_without_the_goal_completes(stack_for):
    stack = await stack_for(Welcome)
    user = stack.user()
    await stack.track("Signed Up", user)
    await stack.advance("t_welcome", user, timedelta(days=3, minutes=1))
    result = await stack.result("t_welcome", user)
    assert result.outcome == "completed"
    [run] = stack.runs(user)
    assert (run.outcome, run.goal_at, run.revenue) == ("completed", None, None)


async def test_the_same_event_delivered_twice_counts_once(stack_for):
    stack = await stack_for(Cart)
    user = stack.user()
    await stack.track("Product Added", user, {"sku": "a"}, message_id="dup-1")
    await stack.advance("t_cart", user, 50 * MINUTE)
    await stack.track("Product Added", user, {"sku": "a"}, message_id="dup-1")  # a retry
    await stack.advance("t_cart", user, 11 * MINUTE)  # 61 min after the first: not restarted
    assert [m.template for m in stack.outbox(user)] == ["reminder"]
    assert (await stack.state("t_cart", user)).events_received == 1
    handle = stack.handle("t_cart", user)
    assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING


async def test_a_suppressed_user_never_starts_and_the_reason_is_recorded(stack_for):
    from tests.engine.sample_journeys import Careful

    stack = await stack_for(Careful)
    upset, fine = stack.user("upset", negative_support=True), stack.user("fine")
    for user in (upset, fine):
        await stack.track("Subscription Cancelled", user)
    result = await stack.result("t_careful", upset)
    assert (result.outcome, result.reason) == ("suppressed", "negative_support")
    [run] = stack.runs(upset)
    assert (run.outcome, run.outcome_reason, run.messages_sent) == (
        "suppressed",
        "negative_support",
        0,
    )
    await stack.advance("t_careful", fine, timedelta(days=7, minutes=1))
    assert [m.template for m in stack.outbox(fine)] == ["we_miss_you"]
    assert stack.outbox(upset) == []


async def test_a_journey_cancelled_from_the_ui_records_where_it_stopped(stack_for):
    stack = await stack_for(Cart)
    user = stack.user()
    await stack.track("Product Added", user, {"sku": "a"})
    await stack.advance("t_cart", user, 61 * MINUTE)
    await stack.handle("t_cart", user).cancel()
    with pytest.raises(WorkflowFailureError):
        await stack.result("t_cart", user)
    [run] = stack.runs(user)
    assert (run.outcome, run.outcome_reason, run.step) == (
        "exited",
        "cancelled",
        "sleep after reminder",
    )
    assert [m.template for m in stack.outbox(user)] == ["reminder"]


async def test_a_workflow_started_for_an_unknown_journey_fails_with_a_clear_error(stack_for):
    stack = await stack_for(Cart)
    with pytest.raises(WorkflowFailureError) as failure:
        await stack.client.execute_workflow(
            JourneyWorkflow.run,
            JourneyInput(journey="no_such_journey", user_id="u"),
            id=f"no_such_journey:{stack.user()}",
            task_queue=stack.router.task_queue,
            execution_timeout=timedelta(seconds=30),  # a regression fails, never hangs
        )
    assert "unknown journey 'no_such_journey'" in str(failure.value.cause)
