"""What an operator sees in the Temporal UI: search attributes, the state query, no PII."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest

from tests.engine.sample_journeys import Cart
from worker import ensure_search_attributes
from workflows.identity import user_key, workflow_id
from workflows.models import Event

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)


async def list_ids(client, query: str, expected: int) -> list[str]:
    """Workflow IDs matching a visibility query (visibility lags writes by a moment)."""
    ids: list[str] = []
    for _ in range(100):
        ids = [w.id async for w in client.list_workflows(query)]
        if len(ids) >= expected:
            return ids
        await asyncio.sleep(0.05)
    return ids


async def test_worker_registers_the_search_attributes_idempotently(temporal):
    await ensure_search_attributes(temporal.client)  # the session already did it once
    assert await ensure_search_attributes(temporal.client) == []
    listed = await temporal.client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=temporal.client.namespace)
    )
    for name in ("JourneyName", "JourneyUserId", "JourneyStep", "JourneyGroup"):
        assert name in listed.custom_attributes


async def test_the_ui_can_list_journeys_waiting_before_their_second_email(stack_for):
    stack = await stack_for(Cart)
    waiting, early = stack.user(), stack.user()
    for user in (waiting, early):
        await stack.track("Product Added", user, {"sku": "x"})
    await stack.advance("t_cart", waiting, 61 * MINUTE)

    query = (
        f"JourneyName = 't_cart' AND JourneyStep = 'sleep after reminder' "
        f"AND JourneyUserId = '{waiting}'"
    )
    assert await list_ids(stack.client, query, 1) == [workflow_id("t_cart", waiting)]
    query = f"JourneyStep = 'inactive_for' AND JourneyUserId IN ('{waiting}', '{early}')"
    assert await list_ids(stack.client, query, 1) == [workflow_id("t_cart", early)]
    query = f"JourneyGroup = 'treatment' AND JourneyUserId = '{early}'"
    assert await list_ids(stack.client, query, 1) == [workflow_id("t_cart", early)]


async def test_state_query_reports_step_next_wakeup_messages_and_group(stack_for):
    stack = await stack_for(Cart)
    user = stack.user()
    await stack.track("Product Added", user, {"sku": "x"})
    await stack.advance("t_cart", user, 61 * MINUTE)
    state = await stack.state("t_cart", user)
    assert state.journey == "t_cart"
    assert state.group == "treatment"
    assert state.messages_sent == 1
    assert state.step == "sleep after reminder"
    assert state.next_wakeup is not None
    wakes_in = state.next_wakeup - state.entered_at
    assert 24 * HOUR <= wakes_in < 24 * HOUR + 2 * MINUTE


async def test_an_email_address_as_user_id_never_reaches_ids_or_search_attributes(stack_for):
    stack = await stack_for(Cart)
    email = f"{stack.user('jane')}@example.com"
    stack.store.upsert_profile(email, email=email)
    [delivery] = await stack.track("Product Added", email, {"sku": "x"})
    assert "@" not in delivery.workflow_id
    assert delivery.workflow_id == workflow_id("t_cart", email) == f"t_cart:{user_key(email)}"
    await stack.advance("t_cart", email, 61 * MINUTE)
    assert [m.recipient for m in stack.outbox(email)] == [email]  # still reaches them

    description = await stack.handle("t_cart", email).describe()
    attributes = {k.name: v for k, v in description.typed_search_attributes}  # type: ignore[misc]
    assert attributes["JourneyUserId"] == user_key(email)
    assert all("@" not in str(v) for v in attributes.values())
    assert "@" not in str(description.raw_description.execution_config)
    assert not description.raw_description.workflow_execution_info.memo.fields


def test_plain_and_hashed_user_keys_never_meet():
    email = "jane@example.com"
    impostor = user_key(email)  # a user who names themselves after Jane's key
    assert impostor.startswith("h_")
    assert user_key(impostor) != user_key(email)
    assert workflow_id("t_cart", impostor) != workflow_id("t_cart", email)
    assert user_key("u-1\n") != "u-1\n" and user_key("u-1\n").startswith("h_")  # no newline
    assert user_key("u-1") == "u-1"  # plain IDs stay readable


async def test_a_signal_carrying_another_users_event_does_not_move_the_journey(stack_for):
    stack = await stack_for(Cart)
    victim, other = stack.user(), stack.user()
    await stack.track("Product Added", victim, {"sku": "x"})
    forged = Event(
        name="Order Completed",
        user_id=other,
        message_id=f"forged-{other}",
        timestamp=datetime.now(UTC),
    )
    await stack.handle("t_cart", victim).signal("event", forged)  # straight to Temporal
    await stack.advance("t_cart", victim, 61 * MINUTE)
    state = await stack.state("t_cart", victim)
    assert state.outcome is None and state.messages_sent == 1  # not converted by it
