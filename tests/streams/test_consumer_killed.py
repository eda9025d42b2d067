"""`journeys consume` SIGKILLed mid-stream, then started again: every event has one effect.

Killed with messages delivered and unacknowledged, some half taken (recorded, not yet routed),
the broker delivers them again to the next process; ingestion's dedupe by messageId makes each
one call, and the journeys drop a message they have already taken.
"""

from __future__ import annotations

import signal

from tests.streams.broker import effects, eventually, signed_up, taken

EVENTS = 100


async def test_a_consumer_killed_mid_stream_and_restarted_leaves_one_effect_per_event(
    broker, queue, welcome_stack, consumer_processes
):
    stack = welcome_stack
    users = [stack.user("killed") for _ in range(EVENTS)]
    await broker.publish_many(queue, [signed_up(user) for user in users])
    url = broker.consumer_url(queue)
    first = consumer_processes(url, stack, JOURNEYS_AMQP_PREFETCH="8")
    await first.start()
    await eventually(lambda: taken(stack.store, users) >= 15, "the first process to take some")
    first.kill(signal.SIGKILL)  # no ack, no cleanup: up to 8 delivered and unacknowledged
    before = taken(stack.store, users)
    assert before < EVENTS, "the stream ended before the kill: publish more events"

    second = consumer_processes(url, stack, JOURNEYS_AMQP_PREFETCH="8")
    await second.start()

    def welcomed() -> bool:  # one query per poll: this process runs the worker too
        return len(stack.store.outbox()) >= EVENTS

    await eventually(welcomed, "a welcome for every user", 120)
    assert second.kill(signal.SIGTERM) == 0, second.log()  # stops cleanly, acks what it took
    assert await broker.ready(queue) == 0
    for user in users:
        assert effects(stack.store, user) == {
            "signed_up": 1, "runs": 1, "outbox": ["welcome"], "receipts": 1, "unrouted": 0,
        }, user  # fmt: skip
    assert "Traceback" not in first.log() + second.log()
