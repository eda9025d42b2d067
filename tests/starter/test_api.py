"""The webhook API over real HTTP: events start journeys; bad input gets a clear error."""

from __future__ import annotations

import json
from datetime import timedelta

import httpx
import pytest

from tests.engine.sample_journeys import Cart

MINUTE = timedelta(minutes=1)


def track(user: str, event: str = "Product Added", **extra: object) -> dict[str, object]:
    return {
        "type": "track",
        "event": event,
        "userId": user,
        "messageId": f"msg-{user}-{event}",
        "timestamp": "2026-11-24T10:00:00Z",
        "properties": {"sku": "chair", "price": 120},
        "context": {"traits": {"email": f"{user}@example.test", "first_name": "Ada"}},
        **extra,
    }


@pytest.mark.both_databases
async def test_a_track_call_starts_the_journey_and_the_email_goes_to_the_profile(api_for):
    api = await api_for(Cart)
    user = api.stack.user(email=False)
    response = await api.http.post("/v1/track", json=track(user))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["messageId"] == f"msg-{user}-Product Added"
    assert body["journeys"] == [
        {"journey": "t_cart", "workflowId": f"t_cart:{user}", "action": "triggered"}
    ]
    await api.stack.advance("t_cart", user, 61 * MINUTE)
    [reminder] = api.stack.outbox(user)
    assert reminder.recipient == f"{user}@example.test"
    assert api.stack.store.get_profile(user).traits["first_name"] == "Ada"


@pytest.mark.both_databases
async def test_a_goal_over_http_reaches_the_running_journey(api_for):
    api = await api_for(Cart)
    user = api.stack.user()
    await api.http.post("/v1/track", json=track(user))
    response = await api.http.post(
        "/v1/track", json=track(user, "Order Completed", timestamp="2026-11-24T10:05:00Z")
    )
    assert response.json()["journeys"][0]["action"] == "signalled"
    assert (await api.stack.result("t_cart", user)).outcome == "converted"


async def test_events_no_journey_wants_are_accepted_and_start_nothing(api_for):
    api = await api_for(Cart)
    response = await api.http.post("/v1/track", json=track("u-any", "Page Viewed"))
    assert response.status_code == 200
    assert response.json()["journeys"] == []


async def test_missing_or_wrong_key_is_401(api_for):
    api = await api_for(Cart)
    async with httpx.AsyncClient(base_url=api.url) as anonymous:
        assert (await anonymous.post("/v1/track", json=track("u"))).status_code == 401
        wrong = {"Authorization": "Bearer not-the-key"}
        response = await anonymous.post("/v1/track", json=track("u"), headers=wrong)
        assert response.status_code == 401
        assert "not-the-key" not in response.text and api.key not in response.text


async def test_malformed_json_is_400_whatever_the_content_type(api_for):
    api = await api_for(Cart)
    for headers in ({"Content-Type": "application/json"}, {"Content-Type": "text/plain"}):
        response = await api.http.post("/v1/track", content=b'{"event": ', headers=headers)
        assert response.status_code == 400
        assert response.json()["detail"] == "malformed JSON body"


async def test_schema_errors_are_422_and_name_the_field(api_for):
    api = await api_for(Cart)
    response = await api.http.post("/v1/track", json={"event": "Product Added"})
    assert response.status_code == 422
    assert "userId or anonymousId" in response.text

    response = await api.http.post("/v1/track", json={**track("u"), "evnt": "typo"})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "evnt"

    response = await api.http.post("/v1/track", json={**track("u"), "timestamp": "yesterday"})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "timestamp"


async def test_a_body_over_one_megabyte_is_413(api_for):
    api = await api_for(Cart)
    payload = track("u", properties={"blob": "x" * 1_100_000})
    response = await api.http.post("/v1/track", content=json.dumps(payload).encode())
    assert response.status_code == 413


@pytest.mark.both_databases
async def test_healthz_is_200_when_temporal_and_the_database_answer(api_for):
    api = await api_for(Cart)
    response = await api.http.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"temporal": "ok", "database": "ok"}


async def test_healthz_is_503_when_the_database_is_gone(api_for, tmp_path):
    api = await api_for(Cart)
    api.stack.store.dispose()
    (tmp_path / "journeys.db").unlink()
    (tmp_path / "journeys.db").mkdir()  # the path now cannot be opened as a database
    response = await api.http.get("/healthz")
    assert response.status_code == 503
    assert response.json()["database"].startswith("unreachable")
    assert response.headers["Retry-After"]


async def test_track_is_503_with_retry_after_when_temporal_is_unreachable(store):
    import asyncio
    import socket

    import uvicorn
    from temporalio.client import Client
    from temporalio.contrib.pydantic import pydantic_data_converter

    from starter.api import create_app
    from starter.settings import Settings

    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
    port = dead.getsockname()[1]
    client = await Client.connect(
        f"127.0.0.1:{port}", lazy=True, data_converter=pydantic_data_converter
    )
    app = create_app(Settings(), client=client, store=store, journeys=[Cart])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            response = await http.post("/v1/track", json=track("u-down"))
            assert response.status_code == 503
            assert response.headers["Retry-After"] == "5"
            assert "Temporal" in response.json()["detail"]
            health = await http.get("/healthz")
            assert health.status_code == 503
            assert health.json()["temporal"].startswith("unreachable")
    finally:
        server.should_exit = True
        await task
        dead.close()
