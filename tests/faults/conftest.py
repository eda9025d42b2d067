"""Fixtures for the fault tests: an SMTP server that can hold its reply, and worker processes
that are always reaped, whatever the test did to them."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.faults.harness import HeldMailbox, WorkerProcess
from tests.smtp_server import SmtpServer


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    """A real SMTP server on loopback; `smtp.mailbox` is a HeldMailbox."""
    with SmtpServer(HeldMailbox()) as server:
        yield server


@pytest.fixture
def task_queue() -> str:
    return f"faults-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def worker_processes(tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """`worker_processes(address, task_queue, database_url, **env)`: a worker process (not
    started yet), more JOURNEYS_* settings in `env`; every one made here is killed at teardown."""
    made: list[WorkerProcess] = []

    def make(address: str, queue: str, database: str, **env: str) -> WorkerProcess:
        log = tmp_path / f"worker-{len(made) + 1}.log"
        worker = WorkerProcess(
            log,
            TEMPORAL_ADDRESS=address,
            JOURNEYS_TASK_QUEUE=queue,
            JOURNEYS_DATABASE_URL=database,
            **env,
        )
        made.append(worker)
        return worker

    yield make
    for worker in made:
        worker.kill()
