"""A live stack for synchronous tests (schemathesis drives `requests`, which blocks).

The API, the worker and their Temporal client run on their own event loop in a background
thread, against the session's real Temporal dev server and a real SQLite file, so a blocking
test can call the API over loopback HTTP while the worker keeps running journeys.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Coroutine, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from pydantic import SecretStr
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from activities.sending import DeliveryPolicy, SendingActivities
from activities.store import Store
from activities.templates import Renderer
from starter.api import create_app
from starter.settings import Settings
from tests.conftest import serving
from worker import ACTIVITY_THREADS, create_worker
from workflows import registry

T = TypeVar("T")

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"

SOURCE_SECRETS = {
    "shopify_secret": SecretStr("shpss_security_test"),
    "stripe_secret": SecretStr("whsec_security_test"),
    "standard_webhook_secret": SecretStr("whsec_c2VjdXJpdHktdGVzdC1zdGFuZGFyZC1rZXk="),
    "segment_secret": SecretStr("segment-security-test"),
}
"""Every source configured, so unsigned requests meet the signature check (401), not a 404."""


@dataclass(frozen=True)
class LiveStack:
    """The shipped journeys behind the API on loopback, run by a worker on a fresh task queue."""

    url: str
    key: str
    """JOURNEYS_API_KEY."""
    secret_key: str
    """JOURNEYS_SECRET_KEY: signs unsubscribe links."""
    store: Store
    client: Client
    """Bound to the stack's own loop: use it through `run`, never on the test's loop."""
    task_queue: str
    loop: asyncio.AbstractEventLoop

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run `coroutine` on the stack's loop (where its client lives); its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=120)


@pytest.fixture(scope="module")
def live_stack(
    temporal: WorkflowEnvironment, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveStack]:
    """API + worker for the shipped journeys, served from a thread with its own event loop."""
    target = temporal.client.service_client.config.target_host
    namespace = temporal.client.namespace
    store = Store(f"sqlite:///{tmp_path_factory.mktemp('security') / 'journeys.db'}")
    store.migrate()
    key, secret_key = uuid.uuid4().hex, uuid.uuid4().hex
    task_queue = f"tq-sec-{uuid.uuid4().hex[:8]}"
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        api_key=SecretStr(key),
        secret_key=SecretStr(secret_key),
        task_queue=task_queue,
        templates_dir=TEMPLATES,
        **SOURCE_SECRETS,
    )
    journeys = registry.load_modules(["workflows.journeys"])
    started: Future[tuple[str, Client, asyncio.AbstractEventLoop]] = Future()
    stopping: list[asyncio.Event] = []

    async def serve() -> None:
        client = await Client.connect(
            target, namespace=namespace, data_converter=pydantic_data_converter
        )
        sending = SendingActivities(
            store,
            Renderer(TEMPLATES),
            policy=DeliveryPolicy(
                quiet_hours=None,
                frequency_cap=1_000_000,
                secret_key=secret_key,
            ),
        )
        stop = asyncio.Event()
        stopping.append(stop)
        with ThreadPoolExecutor(ACTIVITY_THREADS) as pool:
            async with create_worker(client, store, task_queue, pool, sending):
                app = create_app(settings, client=client, store=store, journeys=journeys)
                async with serving(app) as url:
                    started.set_result((url, client, asyncio.get_running_loop()))
                    await stop.wait()

    def main() -> None:
        try:
            asyncio.run(serve())
        except BaseException as err:  # surface a failed start to the waiting fixture
            if not started.done():
                started.set_exception(err)
            raise

    thread = threading.Thread(target=main, name="security-live-stack", daemon=True)
    thread.start()
    url, client, loop = started.result(timeout=60)

    try:
        yield LiveStack(url, key, secret_key, store, client, task_queue, loop)
    finally:
        loop.call_soon_threadsafe(stopping[0].set)
        thread.join(timeout=60)
        store.dispose()
