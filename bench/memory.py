"""Worker memory with many open journeys, against the size of the worker's workflow cache.

    .venv/bin/python -m bench.memory [--max-cached-workflows 1000 10000] [--journeys 50000 12000]
                                     [--database-url postgresql://...]

Starts a Temporal dev server (SQLite file, WAL) and, for each cache size in turn, one worker
process (`bench.cached_worker`: `journeys worker` with `max_cached_workflows` set; 1000 is the
SDK's default and what `journeys worker` runs with), then opens N journeys on it (`bench_open`:
entered, then waiting 30 days on a timer), started as the router starts them, and samples the
worker's resident memory (RSS) as they open. A journey stays in the cache until it is evicted
for a newer one; past the cache size, a journey that wakes is replayed from its history. Prints
RSS idle, at milestones and with all N open, the memory per cached journey, the fill rate, and
the dev server's RSS. Numbers, never assertions.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from pathlib import Path

from temporalio.client import Client

from activities.store import JourneyRun, Store
from bench.ingest import Stack, closed_loop, free_port
from bench.scale import (
    count,
    history_figures,
    pollers,
    quiet,
    rss_bytes,
    sqlalchemy_url,
    start_journey,
    start_process,
    stop,
)
from workflows.identity import workflow_id

MB = 1024 * 1024
STALL = 300.0
"""Seconds without a journey opening before the fill is given up (and the worker's pollers
printed): on a starved machine a worker was seen to stop polling (Temporal's metric
temporal_num_pollers 0 with slots free), and the bench should say so rather than hang."""
MILESTONES = (500, 1_000, 5_000, 10_000, 25_000, 50_000, 100_000)


def slope(points: list[tuple[int, int]], cached: int) -> float:
    """Bytes of RSS per cached journey: least squares of RSS on the journeys the cache holds
    (open ones, up to its size), over the samples past the first 200 (the sandbox's warm-up)."""
    xs = [min(x, cached) for x, _ in points if x >= 200]
    ys = [y for x, y in points if x >= 200]
    if len(set(xs)) < 2:
        return 0.0
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum(
        (x - mx) ** 2 for x in xs
    )


async def fill(stack: Stack, store: Store, client: Client, cached: int, n: int) -> str:
    """Open n journeys on a fresh worker with this cache; returns the result line."""
    run = uuid.uuid4().hex[:6]
    queue = f"memory-{run}"
    env = {
        **stack.env,
        "JOURNEYS_TASK_QUEUE": queue,
        "JOURNEYS_METRICS_ADDRESS": f"127.0.0.1:{free_port()}",
    }
    command = [sys.executable, "-m", "bench.cached_worker", "--max-cached-workflows", str(cached)]
    worker = start_process(command, env, "worker:")
    metrics = env["JOURNEYS_METRICS_ADDRESS"]
    prefix = f"mem-{run}-"
    runs = JourneyRun.__table__  # type: ignore[attr-defined]
    at: dict[int, float] = {}
    points: list[tuple[int, int]] = []
    try:
        await asyncio.sleep(5)
        idle = rss_bytes(worker.pid)
        began = time.monotonic()
        done = asyncio.Event()

        async def sample() -> None:
            shown = time.monotonic()
            while not done.is_set():
                entered = await asyncio.to_thread(count, store, runs, prefix)
                rss = rss_bytes(worker.pid)
                points.append((entered, rss))
                for mark in MILESTONES:
                    if entered >= mark and mark not in at and mark <= n:
                        at[mark] = rss
                if time.monotonic() - shown > 60:
                    shown = time.monotonic()
                    print(
                        f"  cache {cached}: {entered} of {n} open after "
                        f"{shown - began:.0f} s, worker RSS {rss / MB:.0f} MB",
                        flush=True,
                    )
                await asyncio.sleep(2)

        sampler = asyncio.create_task(sample())

        async def open_one(i: int) -> None:
            await start_journey(client, queue, "bench_open", f"{prefix}{i}", "Bench Opened")

        await closed_loop(n, 50, open_one)
        last, moved = -1, time.monotonic()
        while (entered := await asyncio.to_thread(count, store, runs, prefix)) < n:
            if entered != last:
                last, moved = entered, time.monotonic()
            elif time.monotonic() - moved > STALL:
                done.set()
                await sampler
                return (
                    f"max_cached_workflows {cached:>6}: STALLED at {entered} of {n} open, "
                    f"none for {STALL:.0f} s; the worker says: {pollers(metrics)}"
                )
            await asyncio.sleep(2)
        filled = time.monotonic() - began
        done.set()
        await sampler
        await quiet([worker.pid])
        final = rss_bytes(worker.pid)
        ids = [workflow_id("bench_open", f"{prefix}{i}") for i in range(0, n, max(1, n // 10))]
        history = await history_figures(client, ids)
    finally:
        stop([worker])
    cached_now = min(cached, n)
    marks = " / ".join(f"{at[m] / MB:.0f}" for m in MILESTONES if m in at)
    named = " / ".join(f"{m / 1000:g}k" for m in MILESTONES if m in at)
    return (
        f"max_cached_workflows {cached:>6}: RSS idle {idle / MB:5.0f} MB, at {named} open "
        f"{marks} MB, all {n} open {final / MB:5.0f} MB; "
        f"{slope(points, cached) / 1024:5.0f} KiB per cached journey (RSS against cached "
        f"journeys, up to {cached_now}); filled at {n / filled:5.1f} journeys/s; history per "
        f"open journey {history}"
    )


async def measure(stack: Stack, sizes: list[int], counts: list[int]) -> None:
    store = Store(stack.database_url)
    client = await Client.connect(
        f"127.0.0.1:{stack.temporal_port}", data_converter=stack.data_converter()
    )
    lines = []
    try:
        for cached, n in zip(sizes, counts, strict=True):
            line = await fill(stack, store, client, cached, n)
            print(line, flush=True)
            lines.append(line)
    finally:
        store.dispose()
    temporal = stack.processes[stack.roles.index("temporal")].pid
    print("-" * 72)
    print(
        f"worker memory: {' and '.join(map(str, counts))} open journeys (bench_open: entered, "
        f"waiting on a timer), one worker process each in turn; database "
        f"{stack.database_url.split(':')[0]}"
    )
    for line in lines:
        print(line)
    print(
        f"temporal dev server RSS with {sum(counts)} open journeys: "
        f"{rss_bytes(temporal) / MB:.0f} MB"
    )
    print("-" * 72, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--journeys", type=int, nargs="+", default=[50_000, 12_000], metavar="N",
        help="journeys to open per cache size (one value: the same for each)",
    )  # fmt: skip
    parser.add_argument(
        "--max-cached-workflows", type=int, nargs="+", default=[1000, 10_000], metavar="N"
    )
    parser.add_argument("--database-url", default=None, help="default: a SQLite file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="journeys-bench-") as folder:
        stack = Stack(Path(folder), sqlalchemy_url(args.database_url), workers=0)
        stack.env["JOURNEYS_JOURNEY_MODULES"] = '["bench.scale_journeys"]'
        stack.start()
        try:
            sizes, counts = args.max_cached_workflows, args.journeys
            counts = counts * len(sizes) if len(counts) == 1 else counts
            if len(counts) != len(sizes):
                parser.error("give one --journeys, or one per --max-cached-workflows")
            asyncio.run(measure(stack, sizes, counts))
        finally:
            stack.stop()


if __name__ == "__main__":
    main()
