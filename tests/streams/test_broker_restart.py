"""The broker restarted mid-stream: `journeys consume` reconnects by itself and finishes, and
every event has one effect. A node of the test's own is restarted, never the broker other runs
share: once gracefully (rabbitmqctl stop_app, start_app: connections closed by the broker) and
once crashed (SIGKILL, started again on its data: connections cut, nothing said)."""

from __future__ import annotations

import asyncio
import signal

import pytest

from tests.streams.broker import (
    Broker,
    PrivateBroker,
    effects,
    eventually,
    missing,
    new_queue,
    signed_up,
    taken,
)

EVENTS = 100
"""Published before the restart, and as many after; taken two at a time (prefetch 2)."""


@pytest.mark.parametrize("restart", ["stop_app", "crash"])
async def test_the_consumer_reconnects_after_a_broker_restart_and_finishes(
    restart, welcome_stack, consumer_processes, tmp_path
):
    if not PrivateBroker.available():
        missing("no rabbitmq-server installed to start a node of the test's own")
    stack = welcome_stack
    node = PrivateBroker(tmp_path / "rabbitmq")
    await node.start()
    try:
        broker = await Broker.connect(node.url)
        queue = new_queue()
        await broker.declare(queue)
        users = [stack.user("restart") for _ in range(2 * EVENTS)]
        await broker.publish_many(queue, [signed_up(user) for user in users[:EVENTS]])
        consumer = consumer_processes(broker.consumer_url(queue), stack, JOURNEYS_AMQP_PREFETCH="2")
        await consumer.start()
        await eventually(lambda: taken(stack.store, users) >= 10, "some taken before the restart")

        if restart == "crash":
            node.kill()
            assert taken(stack.store, users) < EVENTS, "the stream ended before the restart"
            await node.start()
        else:  # stop_app takes a while: the stream may have ended, the reconnect is the point
            await node.ctl("stop_app")  # every connection closed; durable queue and messages kept
            await asyncio.sleep(1)
            await node.ctl("start_app")
            await node.wait_open()
        broker = await Broker.connect(node.url)  # the test's own connection died too
        await broker.publish_many(queue, [signed_up(user) for user in users[EVENTS:]])

        await eventually(
            lambda: len(stack.store.outbox()) >= len(users), "a welcome for every user", 120
        )
        assert "reconnected to" in consumer.log()
        assert consumer.kill(signal.SIGTERM) == 0, consumer.log()
        assert await broker.ready(queue) == 0
        for user in users:
            assert effects(stack.store, user) == {
                "signed_up": 1, "runs": 1, "outbox": ["welcome"], "receipts": 1, "unrouted": 0,
            }, user  # fmt: skip
        await broker.close()
    finally:
        node.stop()
