"""The RabbitMQ consumer on the machine's broker, in this process as `journeys dev` runs it:
published events start and signal journeys, what can never be taken goes to the dead-letter
queue with its reason, duplicates have one effect, and an unreachable Temporal only pauses."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.contrib.pydantic import pydantic_data_converter

from starter.routing import Router
from starter.streams import Pause
from starter.streams.rabbitmq import ERROR_HEADER, QUEUE_HEADER
from tests.faults.harness import DevServer
from tests.streams.broker import dead_letter_queue, effects, eventually
from tests.streams.journeys import Welcome
from worker import ensure_search_attributes
from workflows.identity import workflow_id


def call(user: str, event: str, **extra: Any) -> dict[str, Any]:
    """A track call as a Segment-shaped producer publishes it, with the user's email."""
    return {
        "type": "track", "userId": user, "event": event,
        "messageId": f"m-{uuid.uuid4()}", "context": {"traits": {"email": f"{user}@example.test"}},
        **extra,
    }  # fmt: skip


async def test_published_events_start_and_signal_journeys(broker, queue, welcome_stack, consuming):
    stack = welcome_stack
    await consuming(broker.url, queue, stack.router, stack.store)
    users = [stack.user("mq") for _ in range(3)]
    for user in users:
        await broker.publish(queue, call(user, "Signed Up"))
    for user in users:
        await broker.publish(queue, call(user, "Activated"))

    def all_congratulated() -> bool:
        return all(effects(stack.store, u)["outbox"] == ["welcome", "well_done"] for u in users)

    await eventually(all_congratulated, "a welcome and a well done for each user")
    for user in users:
        await stack.result("s_welcome", user)  # the journey in Temporal ran to its end
        described = await stack.handle("s_welcome", user).describe()
        assert described.status == WorkflowExecutionStatus.COMPLETED
        assert effects(stack.store, user) == {
            "signed_up": 1, "runs": 1, "outbox": ["welcome", "well_done"], "receipts": 2,
            "unrouted": 0,
        }  # fmt: skip
    assert await broker.ready(queue) == 0 and await broker.ready(dead_letter_queue(queue)) == 0


async def test_what_can_never_be_taken_goes_to_the_dead_letter_queue_with_its_reason(
    broker, queue, welcome_stack, consuming
):
    stack = welcome_stack
    await consuming(broker.url, queue, stack.router, stack.store)
    before, after, batched = stack.user("before"), stack.user("after"), stack.user("batched")
    bad_batch = {"batch": [call(batched, "Signed Up"), {"type": "track", "userId": batched}]}
    await broker.publish(queue, call(before, "Signed Up"))
    await broker.publish(queue, b'{"type": "track", "userId": ', message_id="broken")
    await broker.publish(queue, {"type": "track", "userId": after})  # no event name
    await broker.publish(queue, {"type": "page", "userId": after, "name": "Home"})  # ignored
    await broker.publish(queue, bad_batch)
    await broker.publish(queue, call(after, "Signed Up"))

    async def three_dead() -> bool:
        return await broker.ready(dead_letter_queue(queue)) == 3

    await eventually(three_dead, "three dead letters")
    await eventually(
        lambda: all(effects(stack.store, u)["outbox"] == ["welcome"] for u in (before, after)),
        "the good messages around them taken",
    )
    dead = await broker.take_all(dead_letter_queue(queue))
    reasons = [str(m.headers[ERROR_HEADER]) for m in dead]
    assert reasons[0].startswith("malformed JSON") and dead[0].message_id == "broken"
    assert dead[0].body == b'{"type": "track", "userId": '  # as published, to fix and resend
    assert reasons[1].startswith("invalid call: event: Field required")
    assert reasons[2].startswith("batch items refused (the 1 others taken): item 1: event")
    assert {m.headers[QUEUE_HEADER] for m in dead} == {queue}
    assert effects(stack.store, batched)["signed_up"] == 1  # the batch's good item was taken
    assert await broker.ready(queue) == 0


async def test_the_same_message_twice_has_one_effect(broker, queue, welcome_stack, consuming):
    """A producer's retry, or a redelivery: one call by its messageId, else by its body's
    digest (not the AMQP message-id: aio-pika sets a new one on each publish, a retry's too)."""
    stack = welcome_stack
    consumer = await consuming(broker.url, queue, stack.router, stack.store)
    by_call, by_body = stack.user("call"), stack.user("body")
    with_id = call(by_call, "Signed Up")
    for _ in range(2):
        await broker.publish(queue, with_id)
        await broker.publish(queue, signed_up(by_body))

    users = (by_call, by_body)
    await eventually(
        lambda: all(effects(stack.store, u)["outbox"] == ["welcome"] for u in users), "welcomes"
    )
    await consumer.close()  # lets those in flight finish: what is not acked goes back
    assert await broker.ready(queue) == 0
    for user in users:
        assert effects(stack.store, user) == {
            "signed_up": 1, "runs": 1, "outbox": ["welcome"], "receipts": 1, "unrouted": 0,
        }  # fmt: skip


def signed_up(user: str) -> bytes:
    """A call without a messageId, always the same bytes."""
    return json.dumps({"type": "track", "userId": user, "event": "Signed Up"}).encode()


async def test_while_temporal_is_down_messages_wait_unacknowledged_then_are_taken(
    broker, queue, welcome_stack, consuming, tmp_path
):
    """The consumer's Temporal is not there at first: messages are delivered, neither taken
    nor dead-lettered, and none lost; once a server answers on that address, every one is."""
    stack = welcome_stack
    server = DevServer(tmp_path / "temporal.db", tmp_path / "temporal.log")
    client = await Client.connect(server.address, lazy=True, data_converter=pydantic_data_converter)
    router = Router(client, stack.store, [Welcome], stack.router.task_queue)
    pause = Pause(first=0.2, longest=1.0)
    await consuming(broker.url, queue, router, stack.store, prefetch=4, pause=pause)
    users = [stack.user("wait") for _ in range(6)]
    for user in users:
        await broker.publish(queue, call(user, "Signed Up"))

    await eventually(lambda: pause.paused, "the consumer to pause")
    await asyncio.sleep(1.0)
    assert await broker.ready(queue) == 2  # prefetch 4: four held unacknowledged, two not sent
    assert await broker.ready(dead_letter_queue(queue)) == 0
    assert all(effects(stack.store, u)["runs"] == 0 for u in users)

    await server.start()
    try:
        await ensure_search_attributes(await server.client())

        async def all_started() -> bool:
            for user in users:
                handle = client.get_workflow_handle(workflow_id("s_welcome", user))
                try:
                    await handle.describe()
                except Exception:
                    return False
            return True

        await eventually(all_started, "a journey started for every message", 60)
        await eventually(lambda: not pause.paused, "the consumer to resume")
        await eventually(
            lambda: all(effects(stack.store, u)["unrouted"] == 0 for u in users), "all routed"
        )
        assert await broker.ready(queue) == 0
        assert await broker.ready(dead_letter_queue(queue)) == 0
    finally:
        server.kill()
