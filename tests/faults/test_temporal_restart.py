"""Fault: the Temporal server (dev server on its SQLite file) is killed and started again."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
from pydantic import SecretStr
from temporalio.testing import TimeSkipper

from starter.api import create_app
from starter.client import API_RETRY
from starter.settings import Settings
from tests.conftest import serving
from tests.faults.harness import (
    DAY,
    NOW,
    DevServer,
    HeldMailbox,
    eventually,
    sent_to,
    settled,
    smtp_delivery,
    walk,
)
from tests.faults.journeys import Drip
from workflows.identity import workflow_id

KEY = "faults-api-key"


def signed_up(user: str) -> dict[str, Any]:
    """A track call as Segment sends it: its own messageId, the address in context traits."""
    return {
        "type": "track",
        "event": "Signed Up",
        "userId": user,
        "messageId": f"msg-{user}",
        "context": {"traits": {"email": f"{user}@example.test"}},
    }


async def test_journeys_and_every_acknowledged_call_survive_a_temporal_restart(
    tmp_path, store, smtp, task_queue, worker_processes
):
    mailbox: HeldMailbox = smtp.mailbox
    server = DevServer(tmp_path / "temporal.db", tmp_path / "temporal.log")
    await server.start()
    try:
        client = await server.client(API_RETRY)  # as `journeys api` connects
        worker = worker_processes(server.address, task_queue, store.url, **smtp_delivery(smtp.port))
        await worker.start()
        settings = Settings(api_key=SecretStr(KEY), task_queue=task_queue)
        app = create_app(settings, client=client, store=store, journeys=[Drip])
        async with (
            serving(app) as url,
            httpx.AsyncClient(
                base_url=url, headers={"Authorization": f"Bearer {KEY}"}, timeout=60
            ) as http,
        ):
            sleeping = [f"sleeping-{i}-{uuid.uuid4().hex[:6]}" for i in range(3)]
            for user in sleeping:
                assert (await http.post("/v1/track", json=signed_up(user))).status_code == 200
            await eventually(
                lambda: all(sent_to(mailbox, u) == ["welcome"] for u in sleeping), "welcomes"
            )
            for user in sleeping:  # each now waits on a one-day timer
                await settled(client.get_workflow_handle(workflow_id("f_drip", user)))

            async def sender(user: str) -> None:
                """A sender that retries until it is answered 2xx, as Segment does."""
                while True:
                    response = await http.post("/v1/track", json=signed_up(user))
                    if response.status_code < 300:
                        return
                    assert response.status_code == 503 and response.headers["Retry-After"]
                    await asyncio.sleep(0.2)  # its Retry-After, shortened for the test

            in_flight = [f"in-flight-{i}-{uuid.uuid4().hex[:6]}" for i in range(3)]
            senders = [asyncio.create_task(sender(user)) for user in in_flight]
            await asyncio.sleep(0.05)
            server.kill()  # calls in flight or arriving now: each is 503 or 2xx, never lost
            health = await http.get("/healthz")
            assert health.status_code == 503 and health.headers["Retry-After"]
            assert health.json()["temporal"].startswith("unreachable")
            refused_user = f"refused-{uuid.uuid4().hex[:6]}"
            started = time.monotonic()
            refused = await http.post("/v1/track", json=signed_up(refused_user))
            assert refused.status_code == 503 and refused.headers["Retry-After"]
            # The API's client gives up after 3 s: a 503 well inside a 5 s webhook timeout.
            assert time.monotonic() - started < 5

            await server.start()  # same SQLite file, same ports
            await eventually(
                lambda: _status(http, "/healthz", 200), "/healthz to answer 200 again", 30
            )
            retried = await http.post("/v1/track", json=signed_up(refused_user))
            assert retried.status_code == 200 and retried.json()["status"] == "accepted"
            assert store.event_summary(refused_user, "Signed Up").count == 1  # taken once
            await asyncio.wait_for(asyncio.gather(*senders), 30)

            skipper = TimeSkipper(client)
            everyone = [*sleeping, *in_flight, refused_user]

            plan = [(NOW, "welcome"), (DAY, "tips"), (2 * DAY, "offer")]
            await asyncio.gather(
                *(
                    walk(
                        skipper,
                        client.get_workflow_handle(workflow_id("f_drip", user)),
                        plan,
                        lambda step, user=user: step in sent_to(mailbox, user),  # type: ignore[misc]
                    )
                    for user in everyone
                )
            )

        for user in everyone:
            assert sent_to(mailbox, user) == ["welcome", "tips", "offer"]
            [run] = store.runs(user_id=user)
            assert run.outcome == "completed"
    finally:
        server.kill()


async def _status(http: httpx.AsyncClient, path: str, status: int) -> bool:
    return (await http.get(path)).status_code == status
