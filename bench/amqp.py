"""The consumer round of the ingestion benchmark: `python -m bench.ingest --amqp URL`.

    .venv/bin/python -m bench.ingest --amqp amqp://journeys:journeys@127.0.0.1:5672/journeys_test

After the HTTP rounds, on the same stack (dev server, worker, database), a `journeys consume`
process takes a queue of this run's own on the broker at URL (deleted afterwards), and the same
events as the API rounds are published to it:
1. event -> first send: Signed Up published at 20/s on a quiet stack (after a warm-up), from
   publish to the outbox row, as the HTTP round measures it from POST;
2. events/s: N track calls (each a new journey) published while no consumer runs, then taken
   as one backlog; the rate runs from the first call recorded to the last one routed (their
   receipts' times), so neither publishing nor the process start is counted;
and the consumer process's CPU per event in the backlog. Numbers, never assertions.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aio_pika
from aio_pika.abc import AbstractConnection
from sqlalchemy import func
from sqlmodel import select

from activities.store import EventReceipt, Store
from bench.ingest import BIN, ROOT, Stack, _ms, open_loop, track

LINE = "-" * 72


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--amqp",
        metavar="URL",
        help="also a consumer round: the same events through RabbitMQ at URL (amqp://user:"
        "password@host:5672/vhost; a queue of the run's own is made and deleted there)",
    )
    parser.add_argument(
        "--amqp-prefetch", type=int, default=64, help="the consumer's prefetch (default 64)"
    )


def wanted(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "amqp", None))


class Consumer:
    """`journeys consume` on the stack's Temporal, database and task queue."""

    def __init__(self, stack: Stack, url: str, queue: str, prefetch: int) -> None:
        self.log = stack.data / f"consume-{queue}.log"
        self.command = [str(BIN / "journeys"), "consume", f"{url}?queue={queue}"]
        self.env = {
            **stack.env,
            "JOURNEYS_AMQP_PREFETCH": str(prefetch),
            "JOURNEYS_METRICS_ADDRESS": "",
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start it; return once it consumes (it logs "consuming <queue> ...")."""
        before = self._consuming()
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                self.command, env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + 60
        while self._consuming() == before:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"`journeys consume` did not start:\n{self.log.read_text()}")
            time.sleep(0.1)

    def _consuming(self) -> int:
        return self.log.read_text(errors="replace").count("consuming ") if self.log.exists() else 0

    def cpu_seconds(self) -> float:
        assert self.process is not None
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def call(user: str, event: str) -> dict[str, Any]:
    """The API rounds' track call, with the `type` a message carries (a POST has its path)."""
    return {"type": "track", **track(user, event)}


async def _publish(connection: AbstractConnection, queue: str, bodies: list[Any]) -> None:
    """Persistent and confirmed, as a producer that must not lose events publishes."""
    async with connection.channel() as channel:
        for body in bodies:
            await channel.default_exchange.publish(
                aio_pika.Message(
                    json.dumps(body).encode(),
                    content_type="application/json",
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                ),
                routing_key=queue,
            )


def _routed(store: Store, prefix: str) -> tuple[int, datetime | None, datetime | None]:
    """How many calls of users named `prefix...` are routed; first received, last routed."""
    with store.session() as session:
        row = session.exec(
            select(
                func.count(),
                func.min(EventReceipt.received_at),
                func.max(EventReceipt.routed_at),
            ).where(
                EventReceipt.user_id.startswith(prefix),
                EventReceipt.routed_at.is_not(None),  # type: ignore[union-attr]
            )
        ).one()
    return int(row[0]), row[1], row[2]


async def run(stack: Stack, args: argparse.Namespace) -> None:
    run_id = uuid.uuid4().hex[:6]
    queue = f"journeys-bench-{run_id}"
    n = args.events
    connection = await aio_pika.connect(args.amqp, timeout=10)
    async with connection.channel() as channel:
        await channel.declare_queue(queue, durable=True)
    consumer = Consumer(stack, args.amqp, queue, args.amqp_prefetch)
    store = Store(stack.database_url)
    try:
        # 1. Event -> first send at 20/s, on a quiet stack (after a warm-up), as the HTTP round.
        consumer.start()
        published: dict[str, float] = {}

        async def signup(user: str) -> None:
            published[user] = datetime.now(UTC).timestamp()
            await _publish(connection, queue, [call(user, "Signed Up")])

        async def sent(within: float) -> list[float]:
            deadline = time.monotonic() + within
            while True:
                rows = [m for m in store.outbox() if m.user_id in published]
                if len(rows) >= len(published) or time.monotonic() > deadline:
                    return [m.created_at.timestamp() - published[m.user_id] for m in rows]
                await asyncio.sleep(0.5)

        await open_loop(10, 2, lambda i: signup(f"amqp-warm-{run_id}-{i}"))
        await sent(60)
        published.clear()
        sends = max(200, n // 10)
        await open_loop(20, sends / 20, lambda i: signup(f"amqp-send-{run_id}-{i}"))
        delays = await sent(60)

        # 2. A backlog of N new journeys, published while no consumer runs, then taken.
        consumer.stop()
        backlog = f"amqp-{run_id}-"
        await _publish(
            connection, queue, [call(f"{backlog}{i}", "Product Added") for i in range(n)]
        )
        consumer.start()
        cpu_before = consumer.cpu_seconds()
        deadline = time.monotonic() + max(120, n / 5)
        while (done := _routed(store, backlog))[0] < n and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        cpu = consumer.cpu_seconds() - cpu_before
        taken, first, last = done
        rate = (taken - 1) / (last - first).total_seconds() if first and last and taken > 1 else 0
    finally:
        consumer.stop()
        store.dispose()
        async with connection.channel() as channel:
            await channel.queue_delete(queue)
            await channel.queue_delete(queue + ".dead-letter")
        await connection.close()

    print(LINE)
    print(f"consumer round: `journeys consume` on RabbitMQ, prefetch {args.amqp_prefetch}, "
          f"{n} events as a backlog")  # fmt: skip
    print(LINE)
    per_event = cpu / max(taken, 1) * 1000
    print(f"consumer (backlog)          {rate:8.1f} /s   ({taken} of {n} taken; first recorded "
          f"to last routed)   CPU ms per event, consume {per_event:5.2f}")  # fmt: skip
    if delays:
        print(
            f"event -> first send ({len(delays)} of {len(published)} at 20/s)  "
            f"p50 {_ms(delays, 0.5)}  p99 {_ms(delays, 0.99)}   (publish to outbox row)"
        )
    else:
        print(f"event -> first send: none of {len(published)} sends arrived within 60 s")
    print(LINE)
