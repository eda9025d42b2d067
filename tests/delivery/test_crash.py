"""Exactly once when a real worker process is SIGKILLed in the middle of an SMTP send."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from temporalio.testing import TimeSkipper

from starter.routing import Router
from tests.conftest import settle
from tests.delivery.journeys import Promo
from tests.delivery.test_rules import TEMPLATES
from tests.smtp_server import Mailbox, SmtpServer
from workflows.identity import workflow_id
from workflows.models import Event, JourneyState

ROOT = Path(__file__).resolve().parents[2]


def start_worker(temporal, store, task_queue: str, smtp_port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "TEMPORAL_ADDRESS": temporal.client.service_client.config.target_host,
        "JOURNEYS_TASK_QUEUE": task_queue,
        "JOURNEYS_DATABASE_URL": store.url,
        "JOURNEYS_JOURNEY_MODULES": '["tests.delivery.journeys"]',
        "JOURNEYS_TEMPLATES_DIR": str(TEMPLATES),
        "JOURNEYS_EMAIL_PROVIDER": "smtp",
        "JOURNEYS_SMTP_HOST": "127.0.0.1",
        "JOURNEYS_SMTP_PORT": str(smtp_port),
        "JOURNEYS_SMTP_TLS": "none",
        "JOURNEYS_QUIET_HOURS": "",
        "JOURNEYS_SECRET_KEY": "crash-test",
    }
    return subprocess.Popen(
        [str(Path(sys.executable).parent / "journeys"), "worker"],
        env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


async def wait_for(predicate, timeout: float = 60.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.1)


async def test_a_worker_killed_during_a_send_yields_exactly_one_email(temporal, store):
    task_queue = f"crash-{uuid.uuid4().hex[:8]}"
    user = f"crash-{uuid.uuid4().hex[:8]}"
    store.upsert_profile(user, email=f"{user}@example.test", traits={"first_name": "Kim"})
    router = Router(temporal.client, store, [Promo], task_queue)
    handle = temporal.client.get_workflow_handle(workflow_id("t_promo", user))
    mailbox = Mailbox(hold=3.0)  # the server has the message, the worker waits for "250"
    with SmtpServer(mailbox) as smtp:
        worker = start_worker(temporal, store, task_queue, smtp.port)
        replacement = None
        try:
            event = Event(
                name="Promo Requested", user_id=user, message_id=f"m-{user}",
                timestamp=datetime.now(UTC), properties={"product": "lamp"},
            )  # fmt: skip
            await router.route(event)
            assert await asyncio.to_thread(mailbox.arrived.wait, 60)
            worker.kill()  # SIGKILL mid-send: no cleanup, no "sent" recorded
            worker.wait()
            [row] = store.outbox(user)
            assert row.status == "sending"

            mailbox.hold = 0.0
            replacement = start_worker(temporal, store, task_queue, smtp.port)
            # Past the send's start-to-close timeout, so Temporal retries it on the new worker.
            await TimeSkipper(temporal.client).fast_forward(handle, timedelta(seconds=31))

            async def moved_on() -> bool:
                state = await handle.query("state", result_type=JourneyState)
                return state.step.startswith("sleep after")

            await wait_for(moved_on)
            assert len(mailbox.received) == 1  # not resent: SMTP cannot dedupe
            [mail] = mailbox.received
            assert mail["List-Unsubscribe"].startswith("<http://127.0.0.1:8000/u/")
            assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
            [row] = store.outbox(user)
            assert (row.status, row.error) == ("unknown", "worker stopped during the provider call")

            # The journey carries on ("second" has a broken template): "third" goes out once.
            for _ in range(2):
                await TimeSkipper(temporal.client).fast_forward(handle, timedelta(days=1))
                await settle(handle)
            await wait_for(lambda: asyncio.sleep(0, len(mailbox.received) == 2))
            assert [m["Subject"] for m in mailbox.received] == [
                "Your offer: 10% off",
                "Third: 20% off",
            ]
        finally:
            for process in (worker, replacement):
                if process is not None and process.poll() is None:
                    process.kill()
                    process.wait()
            await handle.terminate()
