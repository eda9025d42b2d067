"""What a journey costs the server: only sends are scheduled activities; the engine's own
writes (entry, steps, outcome) are local activities, recorded as markers (LOCAL_RECORDS)."""

from __future__ import annotations

import json
from datetime import timedelta

from temporalio.api.enums.v1 import EventType

from tests.engine.sample_journeys import Cart
from workflows.engine import (
    CLOSE_AT_OUTCOME,
    CONTINUE_AS_NEW,
    LOCAL_RECORDS,
    RECHECK_SUPPRESSION,
)


async def test_a_new_journey_schedules_only_its_sends_and_records_the_rest_locally(stack_for):
    stack = await stack_for(Cart)
    user = stack.user()
    await stack.track("Product Added", user, {"sku": "chair"})
    await stack.advance("t_cart", user, timedelta(minutes=61))  # the reminder goes out
    await stack.track("Order Completed", user, {"order_id": "o1"})
    assert (await stack.result("t_cart", user)).outcome == "converted"

    history = await stack.handle("t_cart", user).fetch_history()
    scheduled, local, patches = [], [], []
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            scheduled.append(event.activity_task_scheduled_event_attributes.activity_type.name)
        elif event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED:
            details = event.marker_recorded_event_attributes.details
            if "patch-data" in details:
                patches.append(json.loads(details["patch-data"].payloads[0].data)["id"])
            else:
                local.append(json.loads(details["data"].payloads[0].data)["activity_type"])
    assert scheduled == ["send_message"]
    assert patches == [LOCAL_RECORDS, CONTINUE_AS_NEW, CLOSE_AT_OUTCOME, RECHECK_SUPPRESSION]
    assert local[0] == "enter_journey" and local[-1] == "record_outcome"
    # the inactivity wait, the profile read before the send, then the sleep after it
    assert local[1:-1].count("read_profile") == 1
    records = [name for name in local[1:-1] if name != "read_profile"]
    assert set(records) == {"record_step"}
    [run] = stack.runs(user)
    steps = [s.kind for s in stack.store.steps(run.run_id)]
    assert steps.count("send") == 1 and len(steps) == 1 + len(records)  # each recorded once
