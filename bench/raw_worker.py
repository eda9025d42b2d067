"""A bare Temporal SDK worker for `bench.raw_journey`: the ceiling for our worker.

    .venv/bin/python -m bench.raw_worker --address 127.0.0.1:7233 --task-queue bench-raw \
        --database-url postgresql+psycopg://...

No journeys code: the SDK's defaults (sandboxed workflow runner, JSON payloads, cache of 1000
workflows), its activities on a thread pool of the size our worker uses (32), each writing one
row through SQLAlchemy Core to the same database, in tables of its own (`bench_raw_entries`,
`bench_raw_sends`, created if missing). Stops on SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from sqlalchemy import Column, DateTime, MetaData, String, Table, create_engine, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine
from temporalio import activity
from temporalio.client import Client
from temporalio.worker import Worker

from bench.raw_journey import ENTER, SEND, RawJourneyWorkflow, RawWrite

THREADS = 32
"""As worker.ACTIVITY_THREADS."""

metadata = MetaData()
entries = Table(
    "bench_raw_entries",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("workflow_id", String(255), nullable=False),
    Column("user_id", String(255), nullable=False, index=True),
    Column("entered_at", DateTime(timezone=True), nullable=False),
)
sends = Table(
    "bench_raw_sends",
    metadata,
    Column("key", String(255), primary_key=True),
    Column("run_id", String(64), nullable=False),
    Column("user_id", String(255), nullable=False, index=True),
    Column("sent_at", DateTime(timezone=True), nullable=False),
)


def database(url: str) -> Engine:
    """The engine, with the two tables in place."""
    engine = create_engine(url, pool_pre_ping=True)
    metadata.create_all(engine)
    return engine


class RawActivities:
    """One insert each, idempotent on its key (a retried activity adds nothing)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.insert = pg_insert if engine.dialect.name == "postgresql" else sqlite_insert

    @activity.defn(name=ENTER)
    def enter(self, write: RawWrite) -> None:
        row = {
            "run_id": write.run_id,
            "workflow_id": write.workflow_id,
            "user_id": write.user_id,
            "entered_at": datetime.now(UTC),
        }
        with self.engine.begin() as conn:
            conn.execute(self.insert(entries).values(row).on_conflict_do_nothing())

    @activity.defn(name=SEND)
    def send(self, write: RawWrite) -> None:
        row = {
            "key": write.key,
            "run_id": write.run_id,
            "user_id": write.user_id,
            "sent_at": datetime.now(UTC),
        }
        with self.engine.begin() as conn:
            conn.execute(self.insert(sends).values(row).on_conflict_do_nothing())


def count_sends(engine: Engine, user_prefix: str) -> int:
    """Send rows written for users whose ID starts with `user_prefix`."""
    with engine.connect() as conn:
        query = select(func.count()).select_from(sends)
        query = query.where(sends.c.user_id.like(f"{user_prefix}%"))
        return int(conn.execute(query).scalar_one())


def create_worker(
    client: Client, task_queue: str, engine: Engine, executor: ThreadPoolExecutor
) -> Worker:
    raw = RawActivities(engine)
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[RawJourneyWorkflow],
        activities=[raw.enter, raw.send],
        activity_executor=executor,
        max_concurrent_activities=THREADS,
        graceful_shutdown_timeout=timedelta(seconds=5),
    )


async def serve(address: str, task_queue: str, url: str) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    engine = database(url)
    client = await Client.connect(address)
    with ThreadPoolExecutor(THREADS) as executor:
        async with create_worker(client, task_queue, engine, executor):
            print(f"raw worker: task queue {task_queue!r} at {address}", flush=True)
            await stop.wait()
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--address", required=True)
    parser.add_argument("--task-queue", required=True)
    parser.add_argument("--database-url", required=True)
    args = parser.parse_args()
    asyncio.run(serve(args.address, args.task_queue, args.database_url))


if __name__ == "__main__":
    main()
