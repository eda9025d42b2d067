"""Ingestion benchmark: the API's event rate against the raw SDK rate, on the embedded stack.

    .venv/bin/python -m bench.ingest [--events 2000] [--concurrency 50]

Starts what `journeys dev` starts, as separate processes (Temporal dev server on a SQLite file
with the WAL pragmas, `journeys worker`, `journeys api`), then measures, on the same server:
1. raw: signal-with-start straight from the SDK, N workflows at concurrency C;
   (the same start, search attributes included, that the API's router makes);
2. api: POST /v1/track through the API, N events at concurrency C (every one a new journey),
   from a lean keep-alive client (`--client httpx` for httpx, which costs more CPU per request
   than the API itself on these 2 shared cores);
3. the API's latency at half its peak rate (open loop, a fixed arrival rate): right after the
   bursts, while the worker drains the journeys they started, and again once it has (or after
   120 s of draining, saying how many were left);
4. event-to-first-send: a journey whose first step sends, from POST to the outbox row;
5. with `--amqp URL`, the same through RabbitMQ and `journeys consume` (bench/amqp.py).
Prints figures, the ratios the targets are stated in, and each process's CPU per event in the
raw and API rounds (temporal, worker, api, and this load process). Numbers, never assertions.

With `--workers 2 --apis 2` (N API processes behind this one round-robin load generator), and
`--database-url postgresql://...`, the same run goes on beyond one machine (bench/scale.py):
dedupe and exactly-once across replicas (PASS/FAIL), the worker against a bare SDK worker,
segment entry against event-triggered entry, and the database's writes per event.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import httpx
from temporalio.client import Client
from temporalio.common import WorkflowIDReusePolicy
from temporalio.converter import DataConverter

from activities.store import Store
from bench.loopback import LoopbackClient
from starter.codec import data_converter
from starter.dev import EAGER_ACTIVITIES, SQLITE_WAL, temporal_binary
from starter.settings import Settings
from workflows.engine import JourneyWorkflow
from workflows.identity import start_attributes
from workflows.models import Event, JourneyInput

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def closed_loop(
    n: int, concurrency: int, call: Callable[[int], Awaitable[None]]
) -> tuple[float, list[float]]:
    """Run `call(i)` n times with `concurrency` in flight; returns (rate/s, latencies in s)."""
    latencies: list[float] = []
    queue = iter(range(n))

    async def lane() -> None:
        for i in queue:
            start = time.perf_counter()
            await call(i)
            latencies.append(time.perf_counter() - start)

    began = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(concurrency)))
    return n / (time.perf_counter() - began), latencies


async def open_loop(
    rate: float, seconds: float, call: Callable[[int], Awaitable[None]]
) -> list[float]:
    """Start `call(i)` at a fixed arrival rate whatever the answers do; returns latencies."""
    latencies: list[float] = []

    async def timed(i: int) -> None:
        start = time.perf_counter()
        await call(i)
        latencies.append(time.perf_counter() - start)

    tasks = []
    began = time.perf_counter()
    for i in range(int(rate * seconds)):
        delay = began + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(timed(i)))
    await asyncio.gather(*tasks)
    return latencies


class Stack:
    """Temporal dev server, worker and API as processes on free ports in a temporary folder."""

    def __init__(
        self, data: Path, database_url: str | None = None, workers: int = 1, apis: int = 1
    ) -> None:
        """`workers`: `journeys worker` processes on the task queue (docker-compose's
        `--scale worker=N`); each is one Python process, so at most about one core. `apis`:
        `journeys api` processes, each on a port of its own (`api_ports`), as replicas behind a
        load balancer."""
        self.data = data
        self.workers = workers
        self.temporal_port = free_port()
        self.api_ports = [free_port() for _ in range(max(1, apis))]
        self.api_port = self.api_ports[0]
        self.key = uuid.uuid4().hex
        self.task_queue = "bench"
        self.database_url = database_url or f"sqlite:///{data / 'journeys.db'}"
        self.env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "TEMPORAL_ADDRESS": f"127.0.0.1:{self.temporal_port}",
            "JOURNEYS_DATABASE_URL": self.database_url,
            "JOURNEYS_API_KEY": self.key,
            "JOURNEYS_API_PORT": str(self.api_port),
            "JOURNEYS_TASK_QUEUE": self.task_queue,
            # cart_recovery (the burst's journey) and the bench's own: Signed Up must start
            # only bench_welcome, whose templates are the ones in bench/templates.
            "JOURNEYS_JOURNEY_MODULES": '["workflows.journeys.cart_recovery", "bench.journeys"]',
            "JOURNEYS_TEMPLATES_DIR": str(ROOT / "bench" / "templates"),
            "JOURNEYS_QUIET_HOURS": "",  # measure sends, not the night
            "JOURNEYS_SECRET_KEY": "bench-" + "0" * 26,  # journeys api refuses one under 16
        }
        self.processes: list[subprocess.Popen[bytes]] = []
        self.roles: list[str] = []
        """What each of `processes` is: temporal, worker or api."""

    def start(self) -> None:
        self.processes.append(
            subprocess.Popen(
                [
                    temporal_binary(),
                    "server",
                    "start-dev",
                    "--headless",
                    "--ip",
                    "127.0.0.1",
                    "--port",
                    str(self.temporal_port),
                    "--db-filename",
                    str(self.data / "temporal.db"),
                    *SQLITE_WAL,
                    *EAGER_ACTIVITIES,
                    "--log-level",
                    "error",
                ],
                start_new_session=True,
            )
        )
        self.roles.append("temporal")
        self._wait_port(self.temporal_port)
        Store(self.database_url).migrate()
        commands = [("worker", self.api_port)] * self.workers + [("api", p) for p in self.api_ports]
        for command, api_port in commands:
            # each worker its own metrics port, as each container has its own address
            metrics = {"JOURNEYS_METRICS_ADDRESS": f"127.0.0.1:{free_port()}"}
            self.processes.append(
                subprocess.Popen(
                    [str(BIN / "journeys"), command],
                    env={**self.env, **metrics, "JOURNEYS_API_PORT": str(api_port)},
                    cwd=ROOT,
                    stdout=subprocess.DEVNULL,
                    start_new_session=True,
                )
            )
            self.roles.append(command)
        for port in self.api_ports:
            self._wait_port(port)

    def data_converter(self) -> DataConverter:
        """The converter the stack's processes use (they run in ROOT with this environment): it
        encrypts when JOURNEYS_PAYLOAD_KEYS (or .env's, or ROOT/data's key file) says so."""
        settings = Settings(_env_file=ROOT / ".env")
        if not settings.data_dir.is_absolute():
            settings.data_dir = ROOT / settings.data_dir
        return data_converter(settings)

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.send_signal(signal.SIGINT)
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()

    @staticmethod
    def _wait_port(port: int) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    return
            time.sleep(0.1)
        raise SystemExit(f"nothing answered on port {port}")


def track(user: str, event: str) -> dict[str, object]:
    return {
        "userId": user,
        "event": event,
        "messageId": f"m-{uuid.uuid4()}",
        "timestamp": datetime.now(UTC).isoformat(),
        "properties": {"product_id": "p1", "cart_value": 42.0},
        "context": {"traits": {"email": f"{user}@example.test"}},
    }


async def measure(stack: Stack, n: int, concurrency: int, client_kind: str) -> None:
    client = await Client.connect(
        f"127.0.0.1:{stack.temporal_port}", data_converter=stack.data_converter()
    )
    run = uuid.uuid4().hex[:6]

    async def raw(i: int) -> None:
        user = f"raw-{run}-{i}"
        event = Event(
            name="Product Added",
            user_id=user,
            message_id=f"raw-{run}-{i}",
            timestamp=datetime.now(UTC),
            properties={"product_id": "p1"},
        )
        await client.start_workflow(
            JourneyWorkflow.run,
            JourneyInput(journey="cart_recovery", user_id=user),
            id=f"cart_recovery:{user}",
            task_queue=stack.task_queue,
            start_signal="event",
            start_signal_args=[event],
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            search_attributes=start_attributes("cart_recovery", user),  # as the router starts it
        )

    poster = _poster(stack, concurrency, client_kind)
    try:
        failures = 0

        async def api(i: int, prefix: str = "api", event: str = "Product Added") -> None:
            nonlocal failures
            status, _ = await poster.post_json("/v1/track", track(f"{prefix}-{run}-{i}", event))
            if status != 200:
                failures += 1

        store = Store(stack.database_url)
        earlier = len(store.runs("cart_recovery"))  # a --database-url kept from earlier runs

        def entered_so_far() -> int:
            """Journeys of this run the worker has entered (their entry recorded)."""
            return len(store.runs("cart_recovery")) - earlier

        posted: dict[str, float] = {}

        async def signup(i: int) -> None:
            user = f"send-{run}-{i}"
            posted[user] = datetime.now(UTC).timestamp()
            await api(i, "send", "Signed Up")

        async def sent(users: dict[str, float], within: float) -> list[float]:
            deadline = time.monotonic() + within
            while True:
                rows = [m for m in store.outbox() if m.user_id in users]
                if len(rows) >= len(users) or time.monotonic() > deadline:
                    return [m.created_at.timestamp() - users[m.user_id] for m in rows]
                await asyncio.sleep(0.5)

        # Warm up (connections, the worker's sandbox), then event-to-send on a quiet system.
        await open_loop(10, 2, lambda i: signup(i + 1_000_000))
        await sent(dict(posted), 60)
        posted.clear()
        sends = max(200, n // 10)
        await open_loop(20, sends / 20, signup)
        delays = await sent(posted, 60)
        await closed_loop(100, 10, lambda i: raw(i + 10_000_000))
        await closed_loop(100, 10, lambda i: api(i, "warm"))

        # Alternate rounds, so both paths meet the same background (the worker entering the
        # journeys earlier rounds started competes for the same two cores), in the order raw,
        # API, API, raw, ...: a background that grows steadily then favours neither.
        raw_lat, api_lat, raw_time, api_time = [], [], 0.0, 0.0
        raw_cpu, api_cpu = CpuMeter(stack), CpuMeter(stack)
        rounds, per_round = 4, n // 4

        async def raw_round(r: int) -> None:
            nonlocal raw_lat, raw_time
            began = time.perf_counter()
            with raw_cpu:
                raw_lat += (await closed_loop(per_round, concurrency, lambda i: raw(r * n + i)))[1]
            raw_time += time.perf_counter() - began

        async def api_round(r: int) -> None:
            nonlocal api_lat, api_time
            began = time.perf_counter()
            with api_cpu:
                api_lat += (await closed_loop(per_round, concurrency, lambda i: api(r * n + i)))[1]
            api_time += time.perf_counter() - began

        for r in range(rounds):
            first, second = (raw_round, api_round) if r % 2 == 0 else (api_round, raw_round)
            await first(r)
            await second(r)
        raw_rate, api_rate = rounds * per_round / raw_time, rounds * per_round / api_time
        half = api_rate / 2
        half_lat = await open_loop(half, 15, lambda i: api(i, "half"))

        # How fast one worker enters the journeys the burst started (entry activity recorded).
        started = 200 + 2 * rounds * per_round + int(half * 15)
        drain_began = time.perf_counter()
        entered_before = entered_so_far()
        while time.perf_counter() - drain_began < 120:
            entered = entered_so_far()
            if entered >= started:
                break
            await asyncio.sleep(1)
        drain_rate = (entered - entered_before) / (time.perf_counter() - drain_began)
        # Half the peak again, with the backlog gone (or 120 s spent on it): the worker now
        # enters this round's journeys, as it would at a rate the stack sustains.
        steady_lat = await open_loop(half, 15, lambda i: api(i, "steady"))
        store.dispose()
    finally:
        await poster.close()

    line = "-" * 72
    print(line)
    apis = len(stack.api_ports)
    print(f"ingestion benchmark: {n} events, concurrency {concurrency}, {os.cpu_count()} cores, "
          f"database {stack.database_url.split(':')[0]}, {client_kind} load client, "
          f"{stack.workers} worker process{'es' if stack.workers > 1 else ''}, "
          f"{apis} API process{'es' if apis > 1 else ''}")  # fmt: skip
    print(line)
    print(f"raw SDK signal-with-start   {raw_rate:8.1f} /s   p50 {_ms(raw_lat, 0.5)}  "
          f"p99 {_ms(raw_lat, 0.99)}")  # fmt: skip
    print(f"API POST /v1/track (peak)   {api_rate:8.1f} /s   p50 {_ms(api_lat, 0.5)}  "
          f"p99 {_ms(api_lat, 0.99)}   failures {failures}")  # fmt: skip
    print(f"ratio API / raw             {api_rate / raw_rate:8.2f}      (target >= 0.80)")
    print(f"CPU ms per event, raw rounds   {raw_cpu.per_event(rounds * per_round)}")
    print(f"CPU ms per event, API rounds   {api_cpu.per_event(rounds * per_round)}")
    print(f"API at half peak ({half:5.1f}/s), worker draining the bursts' backlog  "
          f"p50 {_ms(half_lat, 0.5)}  p99 {_ms(half_lat, 0.99)}")  # fmt: skip
    after = (
        "steady (backlog drained)"
        if entered >= started
        else f"after 120 s of draining ({started - entered} still to enter)"
    )
    print(f"API at half peak ({half:5.1f}/s), {after}  "
          f"p50 {_ms(steady_lat, 0.5)}  p99 {_ms(steady_lat, 0.99)}   "
          "(target p99 < 1000 ms)")  # fmt: skip
    if delays:
        print(
            f"event -> first send ({len(delays)} of {len(posted)} at 20/s)  "
            f"p50 {_ms(delays, 0.5)}  p99 {_ms(delays, 0.99)}   (target p99 < 1000 ms)"
        )
    else:
        print(f"event -> first send: none of {len(posted)} sends arrived within 60 s")
    print(
        f"worker backlog after the bursts: entering {drain_rate:6.1f} journeys/s "
        f"({entered} of {started} entered)"
    )
    print(line)


class CpuMeter:
    """CPU seconds each process of the stack (and this load process) spends inside `with`."""

    NAMES = ("temporal", "worker", "api", "load")

    def __init__(self, stack: Stack) -> None:
        self.pids = [p.pid for p in stack.processes] + [os.getpid()]
        self.roles = [*stack.roles, "load"]
        self.spent = [0.0] * len(self.pids)
        self._began: list[float] = []

    def __enter__(self) -> None:
        self._began = [_cpu_seconds(pid) for pid in self.pids]

    def __exit__(self, *_: object) -> None:
        for i, pid in enumerate(self.pids):
            self.spent[i] += _cpu_seconds(pid) - self._began[i]

    def per_event(self, events: int) -> str:
        by_role = dict.fromkeys(self.NAMES, 0.0)  # all workers' CPU together
        for role, spent in zip(self.roles, self.spent, strict=True):
            by_role[role] += spent
        figures = [f"{n} {s / events * 1000:5.2f}" for n, s in by_role.items()]
        return "  ".join(figures) + f"   (all {sum(self.spent) / events * 1000:5.2f})"


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of a process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Poster(Protocol):
    async def post_json(self, path: str, payload: Any) -> tuple[int, bytes]: ...
    async def close(self) -> None: ...


class _Httpx:
    """httpx as the load client (`--client httpx`): what a Python sender would use."""

    def __init__(self, base_url: str, key: str, concurrency: int) -> None:
        # Idle connections expire before uvicorn's 5 s keep-alive closes them: a request on a
        # connection the server is closing fails with ReadError after a quiet stretch.
        limits = httpx.Limits(
            max_connections=concurrency * 2,
            max_keepalive_connections=concurrency,
            keepalive_expiry=2,
        )
        self.http = httpx.AsyncClient(
            base_url=base_url, headers={"Authorization": f"Bearer {key}"}, limits=limits, timeout=60
        )

    async def post_json(self, path: str, payload: Any) -> tuple[int, bytes]:
        response = await self.http.post(path, json=payload)
        return response.status_code, response.content

    async def close(self) -> None:
        await self.http.aclose()


class RoundRobin:
    """One load generator in front of several API replicas: each call goes to the next one, as
    a round-robin load balancer would send it."""

    def __init__(self, posters: list[Poster]) -> None:
        self.posters = posters
        self._next = 0

    async def post_json(self, path: str, payload: Any) -> tuple[int, bytes]:
        poster = self.posters[self._next % len(self.posters)]
        self._next += 1
        return await poster.post_json(path, payload)

    async def close(self) -> None:
        for poster in self.posters:
            await poster.close()


def _poster(stack: Stack, concurrency: int, kind: str) -> Poster:
    posters: list[Poster] = []
    for port in stack.api_ports:
        if kind == "httpx":
            posters.append(_Httpx(f"http://127.0.0.1:{port}", stack.key, concurrency))
        else:
            auth = {"Authorization": f"Bearer {stack.key}"}
            posters.append(LoopbackClient("127.0.0.1", port, auth, size=concurrency * 2))
    return posters[0] if len(posters) == 1 else RoundRobin(posters)


def _ms(values: list[float], q: float) -> str:
    return f"{percentile(values, q) * 1000:7.1f} ms"


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    from bench import amqp, scale

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument(
        "--client",
        choices=["lean", "httpx"],
        default="lean",
        help="the load client: lean keep-alive HTTP/1.1 (default) or httpx, which costs more "
        "CPU per request than the API on a 2-core machine",
    )
    parser.add_argument(
        "--database-url", default=None, help="our tables' database (default: a SQLite file)"
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="worker processes (default 1, as `journeys dev`)"
    )
    parser.add_argument(
        "--apis", type=int, default=1, help="API processes, behind round-robin (default 1)"
    )
    scale.add_arguments(parser)
    amqp.add_arguments(parser)  # the consumer round (bench/amqp.py)
    args = parser.parse_args(argv)
    args.database_url = scale.sqlalchemy_url(args.database_url)
    return args


def main() -> None:
    from bench import amqp, scale

    args = arguments()
    with tempfile.TemporaryDirectory(prefix="journeys-bench-") as folder:
        stack = Stack(Path(folder), args.database_url, args.workers, args.apis)
        if scale.wanted(args):
            scale.prepare(stack)  # beyond one machine (bench/scale.py), after the rounds
        stack.start()
        try:
            if not args.scale_only:
                asyncio.run(measure(stack, args.events, args.concurrency, args.client))
            if amqp.wanted(args):  # the same events through RabbitMQ and `journeys consume`
                asyncio.run(amqp.run(stack, args))
            if scale.wanted(args):
                asyncio.run(scale.run(stack, args))
        finally:
            stack.stop()


if __name__ == "__main__":
    main()
