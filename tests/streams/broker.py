"""Real RabbitMQ for the stream tests: the machine's broker, a private node, consumer processes.

The machine's broker (scripts/machine-setup: Debian's rabbitmq-server on loopback, user and
password `journeys`, vhost `journeys_test`) is at JOURNEYS_TEST_AMQP_URL. Each test uses queues
of its own name, deleted afterwards, so tests and concurrent runs never see each other's
messages. A test that restarts the broker starts a private node of its own (`PrivateBroker`,
own port, name and data folder) instead of restarting the one every run shares.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import IO, Any

import aio_pika
import pytest
from aio_pika.abc import AbstractConnection, AbstractIncomingMessage
from sqlmodel import select

from activities.store import EventReceipt, Store
from starter.streams.rabbitmq import DEAD_LETTER_SUFFIX

TEST_AMQP_URL = os.environ.get(
    "JOURNEYS_TEST_AMQP_URL", "amqp://journeys:journeys@127.0.0.1:5672/journeys_test"
)
ROOT = Path(__file__).resolve().parents[2]
JOURNEYS = str(Path(sys.executable).parent / "journeys")
RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")
"""Debian's rabbitmq-server scripts, run directly (the /usr/sbin wrappers switch user)."""


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false")


def missing(what: str) -> None:
    """Skip the test for want of `what` (fail it in CI, where machine-setup provides it)."""
    if in_ci():
        pytest.fail(f"{what}: CI needs it; run scripts/machine-setup", pytrace=False)
    pytest.skip(f"{what}; scripts/machine-setup installs and starts one")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def eventually(
    check: Callable[[], Any | Awaitable[Any]], what: str, timeout: float = 30.0
) -> None:
    """Poll until `check` holds; fail saying `what`."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(0.05)


class Broker:
    """A connection to a broker, to publish to and look into the tests' queues."""

    def __init__(self, connection: AbstractConnection, url: str) -> None:
        self.connection = connection
        self.url = url

    @classmethod
    async def connect(cls, url: str) -> Broker:
        return cls(await aio_pika.connect(url, timeout=5), url)

    def consumer_url(self, queue: str) -> str:
        """The URL `journeys consume` takes, queue included."""
        return f"{self.url}?queue={queue}"

    async def publish(
        self, queue: str, body: bytes | dict[str, Any], *, message_id: str | None = None
    ) -> None:
        """Publish, persistent and confirmed, as a producer that must not lose events would."""
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        async with self.connection.channel() as channel:
            await channel.default_exchange.publish(
                aio_pika.Message(
                    data,
                    content_type="application/json",
                    message_id=message_id,
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                ),
                routing_key=queue,
            )

    async def publish_many(self, queue: str, bodies: list[dict[str, Any]]) -> None:
        """Publish each, persistent, on one channel, each confirmed before the next."""
        async with self.connection.channel() as channel:
            for body in bodies:
                await channel.default_exchange.publish(
                    aio_pika.Message(
                        json.dumps(body).encode(),
                        content_type="application/json",
                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    ),
                    routing_key=queue,
                )

    async def declare(self, queue: str) -> None:
        """The queue, durable, as an operator would create it before producers publish."""
        async with self.connection.channel() as channel:
            await channel.declare_queue(queue, durable=True)

    async def ready(self, queue: str) -> int:
        """Messages waiting in `queue` (not counting those delivered and unacknowledged)."""
        async with self.connection.channel() as channel:
            declared = await channel.declare_queue(queue, passive=True)
            result = declared.declaration_result
            return int(result.message_count or 0)

    async def take_all(self, queue: str) -> list[AbstractIncomingMessage]:
        """Every message waiting in `queue`, taken off it."""
        taken = []
        async with self.connection.channel() as channel:
            declared = await channel.declare_queue(queue, passive=True)
            while (message := await declared.get(no_ack=True, fail=False)) is not None:
                taken.append(message)
        return taken

    async def delete(self, *queues: str) -> None:
        for name in queues:
            async with self.connection.channel() as channel:
                await channel.queue_delete(name)

    async def close(self) -> None:
        await self.connection.close()


def new_queue() -> str:
    """A queue name no other test or run uses."""
    return f"journeys-test-{uuid.uuid4().hex[:12]}"


def dead_letter_queue(queue: str) -> str:
    return queue + DEAD_LETTER_SUFFIX


class PrivateBroker:
    """A RabbitMQ node of this test's own: its own name, port and data folder, so it can be
    stopped and started without touching the broker other runs share."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.node = f"journeys-test-{uuid.uuid4().hex[:8]}@localhost"
        self.process: subprocess.Popen[bytes] | None = None
        self.env = {
            **os.environ,
            "HOME": str(folder),  # its Erlang cookie, shared by rabbitmqctl below
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(free_port()),
            "RABBITMQ_MNESIA_BASE": str(folder / "mnesia"),
            "RABBITMQ_LOG_BASE": str(folder / "log"),
            "RABBITMQ_CONFIG_FILE": str(folder / "rabbitmq"),  # none: not the machine's
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(folder / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(folder / "enabled_plugins"),
            "RABBITMQ_PID_FILE": str(folder / "rabbitmq.pid"),
        }
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    @staticmethod
    def available() -> bool:
        return (RABBITMQ_BIN / "rabbitmq-server").exists() and shutil.which("erl") is not None

    async def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "enabled_plugins").write_text("[].\n")
        self._log = (self.folder / "node.log").open("ab")
        self.process = subprocess.Popen(
            [str(RABBITMQ_BIN / "rabbitmq-server")], env=self.env, cwd=self.folder,
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        await self.wait_open()

    async def wait_open(self) -> None:
        async def answers() -> bool:
            assert self.process is not None and self.process.poll() is None, self.log()
            try:
                connection = await aio_pika.connect(self.url, timeout=2)
            except Exception:  # not listening yet, or not serving yet
                return False
            await connection.close()
            return True

        await eventually(answers, f"RabbitMQ node {self.node}", 60)

    async def ctl(self, *args: str) -> None:
        """rabbitmqctl on this node (stop_app, start_app, ...)."""
        process = await asyncio.create_subprocess_exec(
            str(RABBITMQ_BIN / "rabbitmqctl"), "-q", "-n", self.node, *args, env=self.env,
            cwd=self.folder, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        output, _ = await process.communicate()
        assert process.returncode == 0, output.decode(errors="replace")

    def kill(self) -> None:
        """SIGKILL the node (its own process group, by the id we started it with): a crash,
        at once, with whatever was delivered left unacknowledged. `start()` brings it back
        on the same port and data (durable queues, persistent messages)."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        if self._log is not None:
            self._log.close()

    def log(self) -> str:
        path = self.folder / "node.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        """Shut the node down (its own process group, by the id we started it with)."""
        if self.process is None or self.process.poll() is not None:
            return
        subprocess.run(
            [str(RABBITMQ_BIN / "rabbitmqctl"), "-q", "-n", self.node, "shutdown"],
            env=self.env, cwd=self.folder, capture_output=True, timeout=60, check=False,
        )  # fmt: skip
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        if self._log is not None:
            self._log.close()


class ConsumerProcess:
    """`journeys consume` as its own process, configured through JOURNEYS_* like production."""

    def __init__(self, log: Path, url: str, **env: str) -> None:
        self.log_path = log
        self.url = url
        self.env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "JOURNEYS_JOURNEY_MODULES": "tests.streams.journeys",
            "JOURNEYS_METRICS_ADDRESS": "",
            **env,
        }
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    async def start(self) -> None:
        """Start it; return once it consumes (it logs "consuming <queue> ...")."""
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [JOURNEYS, "consume", self.url], env=self.env, cwd=self.log_path.parent,
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        started = self.log().count("consuming ")

        def consuming() -> bool:
            assert self.process is not None and self.process.poll() is None, self.log()
            return self.log().count("consuming ") > started

        await eventually(consuming, "`journeys consume` to start consuming", 60)

    def kill(self, sig: int = signal.SIGKILL) -> int | None:
        """Stop it by its own process id (SIGKILL: no ack, no cleanup); its exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._log is not None:
            self._log.close()
        return self.process.returncode

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def receipts(store: Store, user: str) -> list[EventReceipt]:
    """The calls recorded for `user` (one per messageId)."""
    with store.session() as session:
        query = select(EventReceipt).where(EventReceipt.user_id == user)
        return list(session.exec(query))


def effects(store: Store, user: str) -> dict[str, Any]:
    """Everything an event of the stream tests' journey leaves behind for `user`: events
    counted, journeys started, emails in the outbox, calls recorded and routed."""
    summary = store.event_summary(user, "Signed Up")
    return {
        "signed_up": summary.count if summary else 0,
        "runs": len(store.runs(user_id=user)),
        "outbox": [m.template for m in store.outbox(user)],
        "receipts": len(receipts(store, user)),
        "unrouted": sum(r.routed_at is None for r in receipts(store, user)),
    }


def taken(store: Store, users: list[str]) -> int:
    """How many of `users` have their call recorded (routed or not)."""
    with store.session() as session:
        query = select(EventReceipt.message_id).where(EventReceipt.user_id.in_(users))
        return len(list(session.exec(query)))


def signed_up(user: str) -> dict[str, Any]:
    """A Signed Up call with its messageId and the user's email, as a producer publishes it."""
    return {
        "type": "track", "userId": user, "event": "Signed Up", "messageId": f"m-{uuid.uuid4()}",
        "context": {"traits": {"email": f"{user}@example.test"}},
    }  # fmt: skip
