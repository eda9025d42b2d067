"""Ingestion over real HTTP: identify, batch, dedupe across replicas, summaries, nothing lost."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import httpx
import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from starter.api import create_app
from starter.settings import Settings
from tests.conftest import serving
from tests.engine.sample_journeys import Cart

pytestmark = pytest.mark.both_databases

MINUTE = timedelta(minutes=1)


def track(user: str, event: str = "Product Added", **extra: object) -> dict[str, object]:
    return {
        "type": "track",
        "event": event,
        "userId": user,
        "messageId": f"msg-{uuid.uuid4()}",
        "timestamp": "2026-11-24T10:00:00Z",
        "properties": {"sku": "chair", "price": 120},
        **extra,
    }


def new_user() -> str:
    return f"user-{uuid.uuid4().hex[:10]}"


async def test_identify_sets_the_address_a_later_journey_writes_to(api_for):
    api = await api_for(Cart)
    user = new_user()
    response = await api.http.post(
        "/v1/identify",
        json={
            "userId": user,
            "traits": {"email": "ada@example.test", "firstName": "Ada", "consent": True},
            "context": {"timezone": "Europe/Paris"},
        },
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "accepted"
    profile = api.stack.store.get_profile(user)
    assert profile.email == "ada@example.test"
    assert profile.traits["timezone"] == "Europe/Paris"
    assert profile.traits["consent"] is True

    await api.http.post("/v1/track", json=track(user))
    await api.stack.advance("t_cart", user, 61 * MINUTE)
    assert [m.recipient for m in api.stack.outbox(user)] == ["ada@example.test"]


async def test_the_same_message_id_twice_has_one_effect(api_for):
    api = await api_for(Cart)
    user = new_user()
    call = track(user)
    first = await api.http.post("/v1/track", json=call)
    again = await api.http.post("/v1/track", json=call)
    assert first.json()["status"] == "accepted"
    assert again.status_code == 200
    assert again.json()["status"] == "duplicate"
    assert again.json()["journeys"] == first.json()["journeys"]
    assert api.stack.store.event_summary(user, "Product Added").count == 1
    assert (await api.stack.state("t_cart", user)).events_received == 1


async def test_concurrent_calls_each_answer_only_once_their_receipt_is_marked_routed(api_for):
    """The routed marks of calls in flight together share transactions; each is still durable
    before its 2xx, so a retry of any of them is a duplicate, not a second delivery."""
    api = await api_for(Cart)
    calls = [track(new_user()) for _ in range(30)]
    first = await asyncio.gather(*(api.http.post("/v1/track", json=c) for c in calls))
    assert [r.json()["status"] for r in first] == ["accepted"] * 30
    again = await asyncio.gather(*(api.http.post("/v1/track", json=c) for c in calls))
    assert [r.json()["status"] for r in again] == ["duplicate"] * 30
    assert [r.json()["journeys"] for r in again] == [r.json()["journeys"] for r in first]
    for call in calls:
        assert (await api.stack.state("t_cart", call["userId"])).events_received == 1


async def test_replicas_share_the_dedupe_so_a_retry_to_another_replica_changes_nothing(api_for):
    api = await api_for(Cart)
    other = await api.replica()
    user = new_user()
    call = track(user)
    answers = await asyncio.gather(
        api.http.post("/v1/track", json=call), other.post("/v1/track", json=call)
    )
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    late = await other.post("/v1/track", json=call)
    assert late.json()["status"] == "duplicate"
    assert api.stack.store.event_summary(user, "Product Added").count == 1
    assert (await api.stack.state("t_cart", user)).events_received == 1
    assert len(api.stack.runs(user)) == 1


async def test_a_call_refused_while_temporal_is_down_is_taken_whole_on_retry(api_for, store):
    api = await api_for(Cart)
    user = new_user()
    call = track(user, context={"traits": {"email": f"{user}@example.test"}})

    dead = await Client.connect("127.0.0.1:1", lazy=True, data_converter=pydantic_data_converter)
    down = create_app(
        Settings(task_queue=api.stack.router.task_queue), client=dead, store=store, journeys=[Cart]
    )
    async with serving(down) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
        refused = await http.post("/v1/track", json=call)
    assert refused.status_code == 503
    assert refused.headers["Retry-After"]

    retried = await api.http.post("/v1/track", json=call)  # the sender retries, Temporal is back
    assert retried.status_code == 200
    assert retried.json()["status"] == "accepted"
    assert retried.json()["journeys"][0]["action"] == "triggered"
    assert api.stack.store.event_summary(user, "Product Added").count == 1
    await api.stack.advance("t_cart", user, 61 * MINUTE)
    assert [m.template for m in api.stack.outbox(user)] == ["reminder"]


async def test_batch_answers_per_item(api_for):
    api = await api_for(Cart)
    user = new_user()
    body = {
        "context": {"library": {"name": "analytics-node"}},
        "batch": [
            {
                "type": "identify",
                "userId": user,
                "messageId": f"id-{user}",
                "traits": {"email": f"{user}@example.test"},
            },
            track(user),
            {"type": "track", "event": "Product Added"},  # no user
            {"type": "page", "userId": user, "name": "Home"},
            {"type": "track", "userId": user, "event": "Product Added", "evnt": "typo"},
        ],
    }
    response = await api.http.post("/v1/batch", json=body)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["status"] for r in results] == [
        "accepted",
        "accepted",
        "rejected",
        "ignored",
        "rejected",
    ]
    assert results[1]["journeys"][0]["action"] == "triggered"
    assert "userId or anonymousId" in results[2]["errors"][0]["error"]
    assert results[4]["errors"][0]["field"] == "evnt"
    assert api.stack.store.get_profile(user).email == f"{user}@example.test"

    again = await api.http.post("/v1/batch", json=body)
    assert [r["status"] for r in again.json()["results"]][:2] == ["duplicate", "duplicate"]


async def test_a_batch_applies_one_users_events_in_timestamp_order(api_for):
    api = await api_for(Cart)
    user = new_user()
    # Sent out of order: the purchase (10:05) is listed before the cart (10:00).
    body = {
        "batch": [
            track(user, "Order Completed", timestamp="2026-11-24T10:05:00Z"),
            track(user, "Product Added", timestamp="2026-11-24T10:00:00Z"),
        ]
    }
    response = await api.http.post("/v1/batch", json=body)
    assert [r["status"] for r in response.json()["results"]] == ["accepted", "accepted"]
    assert (await api.stack.result("t_cart", user)).outcome == "converted"


async def test_a_goal_older_than_the_entry_does_not_end_the_journey(api_for):
    api = await api_for(Cart)
    user = new_user()
    await api.http.post("/v1/track", json=track(user, timestamp="2026-11-24T10:00:00Z"))
    late = track(user, "Order Completed", timestamp="2026-11-24T09:00:00Z")
    assert (await api.http.post("/v1/track", json=late)).json()["journeys"][0]["action"] == (
        "signalled"
    )
    state = await api.stack.state("t_cart", user)
    assert state.outcome is None
    assert state.step.startswith("inactive")


async def test_every_event_updates_the_profile_summary_even_unknown_ones(api_for):
    api = await api_for(Cart)
    user = new_user()
    for stamp, plan in (("10:00", "a"), ("12:00", "c"), ("11:00", "b")):  # one arrives late
        late = track(
            user, "Report Exported", timestamp=f"2026-11-24T{stamp}:00Z", properties={"p": plan}
        )
        response = await api.http.post("/v1/track", json=late)
        assert response.json()["status"] == "accepted"
        assert response.json()["journeys"] == []
    repeat = await api.http.post("/v1/track", json=late)  # recorded once, even with no journey
    assert repeat.json()["status"] == "duplicate"
    summary = api.stack.store.event_summary(user, "Report Exported")
    assert summary.count == 3
    assert (summary.first_seen.hour, summary.last_seen.hour) == (10, 12)
    assert summary.last_properties == {"p": "c"}


async def test_a_streamed_body_over_one_megabyte_is_413_without_content_length(api_for):
    api = await api_for(Cart)

    async def chunks():
        yield b'{"type": "track", "event": "x", "userId": "u", "properties": {"blob": "'
        for _ in range(20):
            yield b"x" * 100_000
        yield b'"}}'

    response = await api.http.post("/v1/track", content=chunks())
    assert response.status_code == 413


async def test_the_openapi_docs_describe_every_endpoint(api_for):
    api = await api_for(Cart)
    schema = (await api.http.get("/openapi.json")).json()
    for path in ("/v1/track", "/v1/identify", "/v1/batch", "/healthz"):
        assert path in schema["paths"]
    body = schema["paths"]["/v1/track"]["post"]["requestBody"]["content"]["application/json"]
    assert "userId" in body["schema"]["properties"]
    assert (await api.http.get("/docs")).status_code == 200
