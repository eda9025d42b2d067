"""Real processes for the fault tests: a Temporal dev server on a SQLite file, worker processes.

Each part can be killed and started again on the same ports and files, which is the point:
the tests break one real part at a time and check what users would notice afterwards.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RetryConfig, RPCError
from temporalio.testing import TimeSkipper

from starter.dev import EAGER_ACTIVITIES, SQLITE_WAL, temporal_binary
from tests.smtp_server import Mailbox
from workflows.models import Event

DAY = timedelta(days=1)
NOW = timedelta(0)
ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = Path(__file__).parent / "templates"
JOURNEYS = str(Path(sys.executable).parent / "journeys")


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def eventually(
    check: Callable[[], bool | Awaitable[bool]], what: str, timeout: float = 30.0
) -> None:
    """Poll a real thing (a process, a row, a mailbox) until `check` holds; fail saying `what`."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(0.05)


def stop(process: subprocess.Popen[bytes] | None, sig: int = signal.SIGTERM) -> None:
    """Stop one process we started (by its own id) and reap it."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class DevServer:
    """`temporal server start-dev` persisting to a SQLite file (WAL), on fixed loopback ports,
    with per-workflow time skipping; `kill()` and `start()` again keep every workflow."""

    def __init__(self, db: Path, log: Path) -> None:
        self.db = db
        self.log_path = log
        self.port = free_port()
        self.http_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [
            temporal_binary(), "server", "start-dev",
            "--ip", "127.0.0.1", "--port", str(self.port), "--http-port", str(self.http_port),
            "--headless", "--log-level", "error",
            "--db-filename", str(self.db),
            *SQLITE_WAL, *EAGER_ACTIVITIES,
            "--dynamic-config-value", "frontend.WorkflowTimeSkippingEnabled=true",
        ]  # fmt: skip

    async def start(self) -> None:
        """Start the server and return once it answers a client."""
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.command(), stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

        async def answers() -> bool:
            assert self.process is not None and self.process.poll() is None, self.log()
            try:
                client = await Client.connect(self.address)
                await client.workflow_service.get_system_info(GetSystemInfoRequest())
            except (RuntimeError, RPCError):  # not listening yet, or not serving yet
                return False
            return True

        await eventually(answers, "the Temporal dev server to answer", 60)

    def kill(self) -> None:
        """SIGKILL: no shutdown, whatever was in flight is cut off."""
        stop(self.process, signal.SIGKILL)
        if self._log is not None:
            self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    async def client(self, retry: RetryConfig | None = None) -> Client:
        return await Client.connect(
            self.address, data_converter=pydantic_data_converter, retry_config=retry
        )


def smtp_delivery(port: int) -> dict[str, str]:
    """Worker settings that deliver email through the SMTP server on `port`."""
    return {
        "JOURNEYS_EMAIL_PROVIDER": "smtp",
        "JOURNEYS_SMTP_HOST": "127.0.0.1",
        "JOURNEYS_SMTP_PORT": str(port),
        "JOURNEYS_SMTP_TLS": "none",
    }


class WorkerProcess:
    """`journeys worker` as its own process, configured through JOURNEYS_* like production."""

    def __init__(self, log: Path, **env: str) -> None:
        self.log_path = log
        self.env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "JOURNEYS_JOURNEY_MODULES": '["tests.faults.journeys"]',
            "JOURNEYS_TEMPLATES_DIR": str(TEMPLATES),
            "JOURNEYS_QUIET_HOURS": "",
            "JOURNEYS_FREQUENCY_CAP": "100",
            "JOURNEYS_SECRET_KEY": "faults",
            "JOURNEYS_METRICS_ADDRESS": "",  # several workers run at once on this machine
            **env,
        }
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    async def start(self) -> None:
        """Start it and return once it is about to poll (it prints "worker: ..." then)."""
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [JOURNEYS, "worker"], env=self.env, cwd=ROOT, stdout=self._log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip

        def ready() -> bool:
            assert self.process is not None and self.process.poll() is None, self.log()
            return "worker: " in self.log()

        await eventually(ready, "the worker process to start", 60)

    def kill(self) -> None:
        """SIGKILL: the worker dies mid-whatever, with no cleanup."""
        stop(self.process, signal.SIGKILL)
        if self._log is not None:
            self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class HeldMailbox(Mailbox):
    """A mailbox that holds its "250" for the recipients in `hold_for` (a slow server), so a
    test can kill things while the server has a message and the sender waits for the reply."""

    def __init__(self) -> None:
        super().__init__()
        self.hold_for: set[str] = set()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        reply = await super().handle_DATA(server, session, envelope)
        if set(envelope.rcpt_tos) & self.hold_for:
            deadline = time.monotonic() + 30
            while self.hold_for and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
        return reply


async def settled(handle: WorkflowHandle[Any, Any], timeout: float = 30.0) -> None:
    """Wait until a journey has nothing in flight: no workflow task, no activity (or it ended)."""

    async def idle() -> bool:
        desc = await handle.describe()
        raw = desc.raw_description
        if desc.status != WorkflowExecutionStatus.RUNNING:
            return True
        return not raw.pending_activities and not raw.HasField("pending_workflow_task")

    await eventually(idle, f"{handle.id} to settle", timeout)


def sent_to(mailbox: Mailbox, user: str) -> list[str]:
    """The steps whose email reached `user`, in arrival order (subject: "<step> for <user>")."""
    return [
        str(mail["Subject"]).split(" for ")[0]
        for mail in list(mailbox.received)
        if str(mail["To"]) == f"{user}@example.test"
    ]


def new_user(store: Any, prefix: str) -> str:
    """A user with an email address on file."""
    user = f"{prefix}-{uuid.uuid4().hex[:8]}"
    store.upsert_profile(user, email=f"{user}@example.test")
    return user


async def track(router: Any, name: str, user: str, profile: Any = None) -> None:
    """Route one event as the API does once it has recorded the call (and read the profile,
    which `profile` stands for when given)."""
    event = Event(
        name=name, user_id=user, message_id=f"m-{uuid.uuid4()}", timestamp=datetime.now(UTC)
    )
    await router.route(event, profile)


async def walk(
    skipper: TimeSkipper,
    journey: WorkflowHandle[Any, Any],
    plan: list[tuple[timedelta, str]],
    arrived: Callable[[str], bool],
) -> None:
    """Move a journey's clock through `plan` (wait, step): after each wait, see that step's
    message arrive (`arrived(step)`); then see the journey end."""
    for wait, step in plan:
        await settled(journey)
        if wait:
            await skipper.fast_forward(journey, wait)
        await eventually(lambda step=step: arrived(step), f"{journey.id}: {step}")  # type: ignore[misc]
    await asyncio.wait_for(journey.result(), 30)
