"""Fixtures for the stream tests: the machine's RabbitMQ, queues of each test's own, consumers
in this process (on the test's worker and database) or as `journeys consume` processes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from activities.store import Store
from starter.backpressure import Admission
from starter.ingest import Ingestor
from starter.routing import Router
from starter.streams.consumer import Pause, StreamConsumer
from starter.streams.rabbitmq import AmqpSource, RabbitMQConsumer
from tests.conftest import Stack
from tests.streams.broker import (
    TEST_AMQP_URL,
    Broker,
    ConsumerProcess,
    dead_letter_queue,
    missing,
    new_queue,
)
from tests.streams.journeys import Welcome


@pytest.fixture(scope="session")
async def _machine_broker() -> AsyncIterator[Broker | str]:
    """A connection to the machine's broker, or why there is none (tried once per run)."""
    try:
        broker = await Broker.connect(TEST_AMQP_URL)
    except Exception as err:
        yield f"no RabbitMQ at {TEST_AMQP_URL} ({type(err).__name__}: {err})"
        return
    yield broker
    await broker.close()


@pytest.fixture
def broker(_machine_broker: Broker | str) -> Broker:
    """The machine's broker; without one, skips the test (fails it in CI)."""
    if isinstance(_machine_broker, str):
        missing(_machine_broker)
    assert isinstance(_machine_broker, Broker)
    return _machine_broker


@pytest.fixture
async def queue(broker: Broker) -> AsyncIterator[str]:
    """A queue of this test's own (and its dead-letter queue), durable; deleted afterwards."""
    name = new_queue()
    await broker.declare(name)
    yield name
    await broker.delete(name, dead_letter_queue(name))


@dataclass
class Running:
    """A consumer in this process: its adapter and the task running it."""

    adapter: RabbitMQConsumer
    stop: asyncio.Event
    task: asyncio.Task[None]

    async def close(self) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, 30)


@pytest.fixture
async def consuming() -> AsyncIterator[Callable[..., Any]]:
    """`await consuming(url, queue, router, store, prefetch=..., pause=...)`: the consumer as
    `journeys dev` runs it, in this process; stopped at teardown."""
    running: list[Running] = []

    async def start(
        url: str,
        queue: str,
        router: Router,
        store: Store,
        *,
        prefetch: int = 16,
        pause: Pause | None = None,
    ) -> Running:
        ingestor = Ingestor(store, router, admission=Admission(prefetch))
        source = AmqpSource.parse(url, queue, prefetch)
        adapter = RabbitMQConsumer(
            StreamConsumer(ingestor, pause), source, reconnect_interval=0.5, grace=5
        )
        stop = asyncio.Event()
        task = asyncio.create_task(adapter.run(stop))
        ready = asyncio.create_task(adapter.ready.wait())
        await asyncio.wait({task, ready}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
        if not adapter.ready.is_set():
            ready.cancel()
            await task  # raises what stopped it
            raise AssertionError("the consumer did not start")
        handle = Running(adapter, stop, task)
        running.append(handle)
        return handle

    yield start
    for handle in running:
        if not handle.task.done():
            await handle.close()


@pytest.fixture
async def welcome_stack(stack_for: Any) -> Stack:
    """A worker running the stream tests' journey, on its own task queue and database."""
    stack: Stack = await stack_for(Welcome)
    return stack


@pytest.fixture
def consumer_processes(tmp_path: Path) -> Iterator[Callable[..., ConsumerProcess]]:
    """`consumer_processes(url, stack, **env)`: a `journeys consume` process (not started)
    for the stack's task queue and database; every one made here is killed at teardown."""
    made: list[ConsumerProcess] = []

    def make(url: str, stack: Stack, **env: str) -> ConsumerProcess:
        process = ConsumerProcess(
            tmp_path / f"consume-{len(made) + 1}.log",
            url,
            TEMPORAL_ADDRESS=stack.client.service_client.config.target_host,
            JOURNEYS_TASK_QUEUE=stack.router.task_queue,
            JOURNEYS_DATABASE_URL=stack.store.url,
            JOURNEYS_DATA_DIR=str(tmp_path / "data"),  # no payload key: clear, as the tests' client
            **env,
        )
        made.append(process)
        return process

    yield make
    for process in made:
        with contextlib.suppress(Exception):
            process.kill()
