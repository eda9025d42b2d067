"""Timer lateness when many journeys' timers fire in the same minute, in real time.

    .venv/bin/python -m bench.timers [--timers 10000] [--window 60] [--lead 420] [--workers 2]
                                     [--max-cached-workflows N] [--database-url postgresql://...]

Starts a Temporal dev server (SQLite file, WAL) and `--workers` worker processes
(`bench.cached_worker`; without `--max-cached-workflows`, exactly `journeys worker`, with the
SDK's cache of 1000), then starts N `bench_timer` journeys as the router starts them, each due
at its own instant spread evenly over one minute that begins `--lead` seconds after the first
start (every journey must have entered and be asleep by then: the bench says if not). When its
timer fires a journey writes one in-app message. Lateness, per journey, of:
- the journey waking: the message's `journey_time` (the journey's clock: when a worker took the
  workflow task the fired timer caused) minus the due instant;
- the message: its `created_at` (wall clock, in the send activity: after a replay, for a journey
  the worker had evicted, and the activity's own dispatch) minus the due instant;
and, from a sample of histories, the server's own part (TimerFired minus due).

Real time, not time skipping: lateness is a wall-clock property of the server's timer queue and
of the workers taking 10,000 wake-ups in a minute. Time skipping moves each journey's clock when
told to and fires its timer then, so it would measure the skipping, not the firing.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from activities.store import JourneyRun, OutboxMessage, Store
from bench.ingest import Stack, closed_loop, free_port, percentile
from bench.scale import (
    Meter,
    Postgres,
    count,
    sqlalchemy_url,
    start_journey,
    start_process,
    stop,
)
from workflows.identity import workflow_id


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _spread(values: list[float]) -> str:
    if not values:
        return "none"
    return (
        f"p50 {percentile(values, 0.5):6.2f} s  p90 {percentile(values, 0.9):6.2f} s  "
        f"p99 {percentile(values, 0.99):6.2f} s  max {max(values):6.2f} s"
    )


async def measure(stack: Stack, args: argparse.Namespace) -> None:
    n, window = args.timers, args.window
    store = Store(stack.database_url)
    client = await Client.connect(
        f"127.0.0.1:{stack.temporal_port}", data_converter=stack.data_converter()
    )
    env = {**stack.env}
    command = [sys.executable, "-m", "bench.cached_worker"]
    if args.max_cached_workflows is not None:
        command += ["--max-cached-workflows", str(args.max_cached_workflows)]
    workers = [
        start_process(command, {**env, "JOURNEYS_METRICS_ADDRESS": f"127.0.0.1:{free_port()}"},
                      "worker:")
        for _ in range(args.workers)
    ]  # fmt: skip
    pg = Postgres.of(stack.database_url)
    roles: dict[str, list[int] | Callable[[], list[int]]] = {
        "temporal": [stack.processes[stack.roles.index("temporal")].pid],
        "workers": [w.pid for w in workers],
    }
    if pg is not None and pg.postmaster:
        roles["postgres"] = pg.processes
    meter = Meter(roles)
    run = uuid.uuid4().hex[:6]
    prefix = f"timer-{run}-"
    runs = JourneyRun.__table__  # type: ignore[attr-defined]
    outbox = OutboxMessage.__table__  # type: ignore[attr-defined]
    first = datetime.now(UTC) + timedelta(seconds=args.lead)
    due = {f"{prefix}{i}": first + timedelta(seconds=window * i / n) for i in range(n)}
    users = list(due)
    random.Random(7).shuffle(users)  # started in random order, so due times interleave
    try:
        began = time.monotonic()

        async def start(i: int) -> None:
            user = users[i]
            await start_journey(
                client, stack.task_queue, "bench_timer", user, "Bench Timer Set",
                due=due[user].isoformat(),
            )  # fmt: skip

        await closed_loop(n, 50, start)
        started = time.monotonic() - began
        while await asyncio.to_thread(count, store, runs, prefix) < n:
            if datetime.now(UTC) > first:
                break
            await asyncio.sleep(1)
        asleep_at = datetime.now(UTC)
        asleep = await asyncio.to_thread(count, store, runs, prefix)
        print(
            f"  {n} started in {started:.0f} s, {asleep} entered and asleep "
            f"{(first - asleep_at).total_seconds():.0f} s before the first is due",
            flush=True,
        )
        # CPU from just before the first is due until the last message is written.
        await asyncio.sleep(max(0.0, (first - datetime.now(UTC)).total_seconds() - 5))
        meter.start()
        deadline = first + timedelta(seconds=window + args.drain)
        while datetime.now(UTC) < deadline:
            if await asyncio.to_thread(count, store, outbox, prefix) >= n:
                break
            await asyncio.sleep(2)
        meter.stop()
        with store.engine.connect() as conn:
            rows = conn.execute(
                select(outbox.c.user_id, outbox.c.journey_time, outbox.c.created_at).where(
                    outbox.c.user_id.like(f"{prefix}%")
                )
            ).all()
        sample = random.Random(1).sample(users, min(200, n))
        fired: list[float] = []
        taken: list[float] = []
        for user in sample:
            handle = client.get_workflow_handle(workflow_id("bench_timer", user))
            history = await handle.fetch_history()
            events = list(history.events)
            timer_fired = EventType.EVENT_TYPE_TIMER_FIRED
            at = next((i for i, e in enumerate(events) if e.event_type == timer_fired), None)
            if at is None:
                continue
            fired_at = _utc(events[at].event_time.ToDatetime())
            fired.append((fired_at - due[user]).total_seconds())
            started_task = next(
                (e for e in events[at:]
                 if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED),
                None,
            )  # fmt: skip
            if started_task is not None:
                taken.append(
                    (_utc(started_task.event_time.ToDatetime()) - fired_at).total_seconds()
                )
    finally:
        stop(workers)
        store.dispose()
        if pg is not None:
            pg.dispose()
    woke = [(_utc(jt) - due[u]).total_seconds() for u, jt, _ in rows]
    written = [(_utc(ca) - due[u]).total_seconds() for u, _, ca in rows]
    in_minute = sum(1 for u, _, ca in rows if _utc(ca) < first + timedelta(seconds=window))
    cache = args.max_cached_workflows or "1000 (SDK default, as journeys worker)"
    print("-" * 72)
    print(
        f"timer lateness, real time: {n} journeys due within {window} s, {args.workers} worker "
        f"processes, max_cached_workflows {cache} each; database "
        f"{stack.database_url.split(':')[0]}"
    )
    print(f"journeys asleep before the window: {asleep} of {n}")
    print(f"messages written: {len(rows)} of {n}, {in_minute} within the minute")
    print(f"journey woke (journey_time - due)    {_spread(woke)}")
    print(f"message written (created_at - due)   {_spread(written)}")
    print(f"server: timer fired - due ({len(fired)} histories)   {_spread(fired)}")
    print(f"server: task taken - timer fired ({len(taken)} histories)   {_spread(taken)}")
    print(f"CPU ms per timer, from the window to the last message: {meter.per(n)}")
    print("-" * 72, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--timers", type=int, default=10_000)
    parser.add_argument("--window", type=float, default=60.0, help="seconds the timers span")
    parser.add_argument("--lead", type=float, default=420.0, help="seconds to the first due")
    parser.add_argument("--drain", type=float, default=600.0, help="seconds to wait after it")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--max-cached-workflows", type=int, default=None)
    parser.add_argument("--database-url", default=None, help="default: a SQLite file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="journeys-bench-") as folder:
        stack = Stack(Path(folder), sqlalchemy_url(args.database_url), workers=0)
        stack.env["JOURNEYS_JOURNEY_MODULES"] = '["bench.scale_journeys"]'
        stack.start()
        try:
            asyncio.run(measure(stack, args))
        finally:
            stack.stop()


if __name__ == "__main__":
    main()
