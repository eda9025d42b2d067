"""What the broker-neutral consumer decides for a message, without a broker: the reading of a
body (`read`), its dedupe key, and `StreamConsumer.handle` on a real Temporal and database."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from starter.calls import MAX_BODY, IdentifyCall, TrackCall
from starter.ingest import Ingestor
from starter.routing import Router
from starter.streams import DeadLetter, Pause, StreamConsumer, Taken, message_key, read
from starter.streams.consumer import Message
from tests.streams.broker import free_port, receipts
from tests.streams.journeys import Welcome


def body(payload: Any) -> bytes:
    return json.dumps(payload).encode()


def signed_up(user: str, **extra: Any) -> dict[str, Any]:
    return {"type": "track", "userId": user, "event": "Signed Up", **extra}


def test_a_call_is_read_as_the_api_reads_it():
    message = read(body(signed_up("u1", messageId="m1")), "key")
    assert isinstance(message, Message) and message.user == "u1"
    [call] = message.calls
    assert isinstance(call, TrackCall) and call.message_id == "m1"
    [identify] = read(body({"type": "identify", "userId": "u1", "traits": {}}), "k").calls  # type: ignore[union-attr]
    assert isinstance(identify, IdentifyCall)


def test_a_call_without_a_message_id_gets_the_message_key_so_a_redelivery_is_the_same_call():
    raw = body(signed_up("u1"))
    assert message_key(raw) == message_key(raw) != message_key(body(signed_up("u2")))
    [call] = read(raw, message_key(raw)).calls  # type: ignore[union-attr]
    assert call.message_id == message_key(raw)


def test_what_can_never_be_taken_is_a_dead_letter_naming_why():
    cases = {
        b"{not json": "malformed JSON",
        b"\xff\xfe": "malformed JSON",
        b'{"userId": "u", "event": "x", "properties": {"n": NaN}}': "malformed JSON",
        b"[1, 2]": "not a JSON object",
        body({"type": "track", "userId": "u1"}): "invalid call: event: Field required",
        body({"type": "track", "event": "Signed Up"}): "userId or anonymousId is required",
        body({"type": "shout", "userId": "u1"}): "invalid call",
        body({"userId": "u1", "event": "x"}): "type: Field required (track, identify, delete,",
        body(signed_up("u1", userid="typo")): "userid: Extra inputs are not permitted",
        body(signed_up("u1", properties={"a": "b\x00"})): "properties.a: a NUL character",
        body({"type": ["track"], "userId": "u1"}): "invalid call",
        b" " * (MAX_BODY + 1): f"message over {MAX_BODY} bytes",  # the API's 413
    }
    for raw, reason in cases.items():
        decision = read(raw, "key")
        assert isinstance(decision, DeadLetter), raw
        assert reason in decision.reason, (raw, decision.reason)


def test_types_no_journey_uses_are_taken_and_ignored():
    for kind in ("page", "screen", "group", "alias"):
        message = read(body({"type": kind, "userId": "u1", "name": "Home"}), "k")
        assert isinstance(message, Message) and message.ignored == 1 and not message.calls


def test_a_batch_keeps_its_good_items_and_names_the_refused_ones():
    payload = {
        "batch": [
            signed_up("u1"),
            {"type": "track", "userId": "u2"},
            {"type": "page", "userId": "u3"},
            signed_up("u4", messageId="own"),
        ]
    }
    message = read(body(payload), "k")
    assert isinstance(message, Message)
    assert [c.message_id for c in message.calls] == ["k:0", "own"]
    assert message.ignored == 1 and message.user is None
    assert message.refused == ["item 1: event: Field required"]


async def test_a_duplicate_has_one_effect_and_a_refused_batch_item_is_set_aside(
    welcome_stack, store
):
    consumer = StreamConsumer(Ingestor(store, welcome_stack.router))
    user = welcome_stack.user("dup")
    raw = body(signed_up(user))
    first, again = await consumer.handle(raw), await consumer.handle(raw)
    assert first == Taken(("accepted",)) and again == Taken(("duplicate",))
    assert store.event_summary(user, "Signed Up").count == 1  # type: ignore[union-attr]
    batch = {"batch": [signed_up(user, messageId="b1"), {"type": "track", "userId": user}]}
    decision = await consumer.handle(body(batch))
    assert isinstance(decision, DeadLetter) and "the 1 others taken" in decision.reason
    assert store.event_summary(user, "Signed Up").count == 2  # type: ignore[union-attr]


async def test_while_temporal_is_unreachable_a_message_waits_and_is_never_set_aside(
    welcome_stack, store
):
    """Nothing listens on the client's address: every attempt is Unavailable. The message is
    neither taken nor dead-lettered; it waits (the consumer paused) until its delivery is gone."""
    lazy = await Client.connect(
        f"127.0.0.1:{free_port()}", lazy=True, data_converter=pydantic_data_converter
    )
    router = Router(lazy, store, [Welcome], welcome_stack.router.task_queue)
    pause = Pause(first=0.05, longest=0.2)
    consumer = StreamConsumer(Ingestor(store, router), pause)
    user = f"down-{uuid.uuid4().hex[:8]}"
    delivered = True
    handling = asyncio.create_task(consumer.handle(body(signed_up(user)), alive=lambda: delivered))
    await asyncio.sleep(1.0)
    assert not handling.done() and pause.paused
    delivered = False  # its channel closed: the broker delivers it again
    try:
        await asyncio.wait_for(handling, 5)
    except Exception as err:
        assert type(err).__name__ == "Abandoned"
    else:
        raise AssertionError("a message whose delivery is gone must be abandoned")
    [receipt] = receipts(store, user)  # recorded, never routed: a redelivery routes it
    assert receipt.routed_at is None and store.runs(user_id=user) == []
