"""A chatty user cannot push a journey into Temporal's history limits: a run continues as new
before them (10,000 signals per run are refused, 51,200 events terminate the workflow), and the
next run carries on exactly: the handler's counts, the steps done, the sends made, the clock."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError

from starter.replay import replayer
from tests.conftest import settle
from tests.engine.sample_journeys import Chatty, ChattyCart, ChattyUncarriable
from workflows.engine import HISTORY_BOUND
from workflows.identity import workflow_id
from workflows.models import Event

FLOOD = 20_000
PAGES = 37


async def flood(stack, journey: str, user: str, name: str, count: int, props) -> list[Event]:
    """Signal `count` events straight to the user's journey, 16 at a time, as the router does:
    several hundred a second to one user, far beyond what a person's sessions produce."""
    handle = stack.handle(journey, user)
    start = datetime.now(UTC)
    events = [
        Event(
            name=name,
            user_id=user,
            message_id=f"m-{uuid.uuid4().hex}",
            timestamp=start + timedelta(milliseconds=i),
            properties=props(i),
        )
        for i in range(count)
    ]
    gate = asyncio.Semaphore(16)

    async def one(event: Event) -> None:
        async with gate:
            for _ in range(100):
                try:
                    await handle.signal("event", event)
                    return
                except RPCError as err:
                    # What the API answers 503 for and a sender retries: a run that gets a
                    # burst faster than it can hand over refuses signals past 10,000 until
                    # the new run takes them.
                    if "limit for signal" not in err.message:
                        raise
                    await asyncio.sleep(0.2)
            raise AssertionError("the journey never took the event")

    await asyncio.gather(*(one(event) for event in events))
    return events


async def runs_of(stack, wid: str) -> list:
    return [run async for run in stack.client.list_workflows(f"WorkflowId = '{wid}'")]


async def test_20000_events_into_one_journey_continue_as_new_and_lose_nothing(stack_for):
    stack = await stack_for(Chatty)
    user = stack.user()
    await stack.track("Signed Up", user)
    handle = stack.handle("t_chatty", user)
    await settle(handle)
    assert [m.template for m in stack.outbox(user)] == ["welcome"]

    events = await flood(
        stack, "t_chatty", user, "Page Viewed", FLOOD, lambda i: {"page": f"/p/{i % PAGES}"}
    )
    for event in events[-100:]:  # the webhook's retries: the same message IDs again
        await handle.signal("event", event)
    await settle(handle, timeout=120)

    state = await stack.state("t_chatty", user)
    assert state.events_received == FLOOD + 1
    assert state.runs >= 3, "20,000 signals cannot fit one run (Temporal refuses past 10,000)"
    assert state.step == "wait_for Checklist Done after welcome"
    assert state.messages_sent == 1

    # Every run stayed far below Temporal's bounds, and each earlier run continued as new.
    wid = workflow_id("t_chatty", user)
    runs = await runs_of(stack, wid)
    assert len(runs) == state.runs
    assert sum(r.status == WorkflowExecutionStatus.CONTINUED_AS_NEW for r in runs) == len(runs) - 1
    for run in runs:
        history = await stack.client.get_workflow_handle(wid, run_id=run.run_id).fetch_history()
        assert len(history.events) < HISTORY_BOUND + 1_000
        signals = [
            e
            for e in history.events
            if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
        ]
        assert len(signals) < 10_000

    # The user finishes the checklist: the next step sees every view counted once.
    await stack.track("Checklist Done", user)
    await settle(handle)
    sent = stack.outbox(user)
    assert [m.template for m in sent] == ["welcome", "congrats"]
    assert sent[1].context == {
        "views": FLOOD,
        "pages": PAGES,
        "last_view": events[-1].timestamp.isoformat(),
    }

    # The clock carried over too: the summary goes two days after the congratulations.
    await stack.advance("t_chatty", user, timedelta(days=2, minutes=1))
    sent = stack.outbox(user)
    assert [m.template for m in sent] == ["welcome", "congrats", "summary"]
    assert sent[2].context == {"views": FLOOD, "sent_before": 2}
    gap = sent[2].journey_time - sent[1].journey_time
    assert timedelta(days=2) <= gap < timedelta(days=2, minutes=2)

    await stack.track("Upgraded", user)
    result = await stack.result("t_chatty", user)
    assert (result.outcome, result.messages_sent) == ("converted", 3)
    [run] = stack.runs(user)  # one journey, one entry, whatever the number of Temporal runs
    assert (run.outcome, run.messages_sent, run.group) == ("converted", 3, "treatment")
    steps = stack.store.steps(run.run_id)
    assert [s.kind for s in steps].count("wait_for") == 1  # the wait was not written again
    # The variant was chosen once, in the first run, and every later run's replay kept it.
    assert [s.kind for s in steps].count("variant") == 1
    assert len({m.variant for m in stack.outbox(user)}) == 1
    assert stack.outbox(user)[0].variant == Chatty.copy.assign("t_chatty", user)

    # Every run's history replays on this code (the hand-over is deterministic).
    histories = [
        await stack.client.get_workflow_handle(wid, run_id=r.run_id).fetch_history()
        for r in await runs_of(stack, wid)
    ]
    for history in histories:
        await replayer().replay_workflow(history)


async def test_a_cart_changed_6000_times_while_qualifying_enters_once_with_every_change(stack_for):
    stack = await stack_for(ChattyCart)
    user = stack.user()
    await stack.track("Product Added", user, {"sku": "sku-0"})
    await flood(
        stack, "t_chatty_cart", user, "Product Added", 6_000, lambda i: {"sku": f"sku-{i % 5}"}
    )
    await settle(stack.handle("t_chatty_cart", user), timeout=120)
    state = await stack.state("t_chatty_cart", user)
    assert (state.step, state.group, state.runs > 1) == ("qualifying", None, True)

    await stack.advance("t_chatty_cart", user, timedelta(minutes=61))
    [reminder] = stack.outbox(user)
    assert reminder.context == {
        "quantities": {"sku-0": 1201, "sku-1": 1200, "sku-2": 1200, "sku-3": 1200, "sku-4": 1200}
    }
    [run] = stack.runs(user)
    assert run.group == "treatment"


async def test_a_journey_whose_state_cannot_be_carried_keeps_one_run_and_still_works(stack_for):
    stack = await stack_for(ChattyUncarriable)
    user = stack.user()
    await stack.track("Signed Up", user)
    await flood(stack, "t_chatty_uncarriable", user, "Page Viewed", 2_500, lambda i: {})
    handle = stack.handle("t_chatty_uncarriable", user)
    await settle(handle, timeout=60)
    assert (await stack.state("t_chatty_uncarriable", user)).runs == 1

    await stack.track("Checklist Done", user)
    await settle(handle)
    [congrats] = stack.outbox(user)
    assert congrats.context == {"views": 2_500}
