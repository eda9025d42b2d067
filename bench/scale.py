"""Beyond one machine: replicas, the worker's ceiling, segment entry (run by `bench.ingest`).

    .venv/bin/python -m bench.ingest --database-url postgresql+psycopg://... --workers 2 --apis 2

After the ingestion rounds, on the same stack (one dev server, PostgreSQL, N API processes
behind one round-robin load generator, N `journeys worker` processes):

1. dedupe across replicas: the same track call (same messageId) sent to two API replicas, at
   the same instant and one after the other; each must have one effect (one receipt, the
   event counted once, one journey, one email, the event once in the journey);
2. what an event costs the database: a burst of events through the APIs, with PostgreSQL's
   write transactions, rows and WAL bytes per event (the journeys they start wait an hour, so
   only the API writes);
3. the worker's ceiling: the smallest journey (an entry write, one activity, a timer) run by
   our workers and by as many bare SDK workers (`bench.raw_worker`, no journeys code), in
   alternating rounds; journeys entered per second by each and the ratio, with CPU, history
   and database writes per journey;
4. segment entry: feature_adoption's segment run (the schedule's workflow) entering N users,
   against the same journey started directly, and the event-triggered rate of 3;
5. exactly once across a worker's death: two more `journeys worker` processes sending through
   a provider stand-in (`bench.esp`, Postmark's API, no dedupe) that holds each call; one
   worker is SIGKILLed while sends are in flight, the other carries on; then outbox rows per
   idempotency key, and the provider's receipts per key.
Checks print PASS or FAIL; figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import Engine
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHistory
from temporalio.common import WorkflowIDReusePolicy

from activities.store import (
    EventReceipt,
    EventSummary,
    JourneyRun,
    OutboxMessage,
    ProfileRow,
    Store,
)
from bench import raw_worker
from bench.ingest import BIN, ROOT, Stack, closed_loop, free_port
from bench.loopback import LoopbackClient
from bench.raw_journey import RawStart
from workflows.identity import start_attributes, workflow_id
from workflows.models import (
    Event,
    JourneyInput,
    JourneyState,
    SegmentProgress,
    SegmentRunInput,
)
from workflows.segments import SEGMENT_ENTERED

LINE = "-" * 72
DAY = timedelta(days=1)
JOURNEY_MODULES = [
    "workflows.journeys.cart_recovery",
    "bench.journeys",
    "workflows.journeys.feature_adoption",
]
"""The stack's journeys in a scale run: the ingestion bench's two, and a segment-entered one."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("beyond one machine (with --workers or --apis above 1)")
    group.add_argument("--no-scale", action="store_true", help="skip these phases")
    group.add_argument(
        "--scale-only", action="store_true", help="skip the ingestion rounds, run only these"
    )
    group.add_argument("--dedupe-pairs", type=int, default=40, help="duplicates of each kind")
    group.add_argument("--api-burst", type=int, default=600, help="events for database writes")
    group.add_argument(
        "--ceiling-journeys", type=int, default=600, help="journeys per round (2 rounds each)"
    )
    group.add_argument("--segment-users", type=int, default=1000)
    group.add_argument("--kill-sends", type=int, default=150)
    group.add_argument(
        "--hold", type=float, default=2.0, help="seconds the provider stand-in takes per send"
    )


def wanted(args: argparse.Namespace) -> bool:
    return not args.no_scale and (args.workers > 1 or args.apis > 1 or args.scale_only)


def sqlalchemy_url(url: str | None) -> str | None:
    """`postgresql://` as people write it, with the driver the project installs (psycopg 3)."""
    if url is not None and url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def prepare(stack: Stack) -> None:
    """Before `stack.start()`: the journeys these phases start."""
    stack.env["JOURNEYS_JOURNEY_MODULES"] = json.dumps(JOURNEY_MODULES)


# Measuring ----------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU of a process, from /proc (Linux); None once it has gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> int:
    """Resident set size of a process (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def children(parent: int) -> list[int]:
    """Processes whose parent is `parent` (PostgreSQL's backends under its postmaster)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(stat[1]) == parent:
            found.append(int(entry.name))
    return found


def machine_busy() -> float:
    """CPU seconds the whole machine has spent busy (all cores; /proc/stat, without steal)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq = (int(f) for f in fields[:7])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


class Meter:
    """CPU seconds spent by each role's processes between `start()` and `stop()`; a role given
    as a function is asked for its processes at both ends (connections come and go). Also what
    the rest of the machine spent meanwhile (`others`): other people's work on shared cores."""

    def __init__(self, roles: dict[str, list[int] | Callable[[], list[int]]]) -> None:
        self.roles = roles
        self.spent: dict[str, float] = dict.fromkeys(roles, 0.0)
        self._began: dict[str, dict[int, float]] = {}
        self.elapsed = self.machine = 0.0
        self._clock = self._machine = 0.0

    def _read(self, role: str) -> dict[int, float]:
        source = self.roles[role]
        pids = source() if callable(source) else source
        readings = {pid: cpu_seconds(pid) for pid in pids}
        return {pid: cpu for pid, cpu in readings.items() if cpu is not None}

    def start(self) -> None:
        self._began = {role: self._read(role) for role in self.roles}
        self._clock, self._machine = time.monotonic(), machine_busy()

    def stop(self) -> None:
        for role in self.roles:
            for pid, cpu in self._read(role).items():
                self.spent[role] += cpu - self._began[role].get(pid, 0.0)
        self.elapsed += time.monotonic() - self._clock
        self.machine += machine_busy() - self._machine

    def others(self) -> float:
        """Cores the machine's other processes used on average while measuring."""
        ours = sum(self.spent.values())
        return max(0.0, self.machine - ours) / self.elapsed if self.elapsed else 0.0

    def per(self, n: int) -> str:
        parts = [f"{role} {spent / n * 1000:5.2f}" for role, spent in self.spent.items()]
        return (
            "  ".join(parts)
            + f"   (all {sum(self.spent.values()) / n * 1000:5.2f}; other people's processes "
            f"meanwhile {self.others():.2f} cores)"
        )


@dataclass
class DbCounters:
    write_transactions: int
    rows: int
    wal_bytes: int
    commits: int

    def __sub__(self, other: DbCounters) -> DbCounters:
        return DbCounters(
            self.write_transactions - other.write_transactions,
            self.rows - other.rows,
            self.wal_bytes - other.wal_bytes,
            self.commits - other.commits,
        )

    def __add__(self, other: DbCounters) -> DbCounters:
        return DbCounters(
            self.write_transactions + other.write_transactions,
            self.rows + other.rows,
            self.wal_bytes + other.wal_bytes,
            self.commits + other.commits,
        )

    def per(self, n: int) -> str:
        return (
            f"{self.write_transactions / n:5.2f} write transactions, {self.rows / n:5.2f} rows "
            f"written, {self.wal_bytes / n / 1024:5.1f} KiB of WAL"
        )


NOTHING = DbCounters(0, 0, 0, 0)


class Postgres:
    """Our database's own counters: write transactions (transaction IDs handed out, which only
    writing transactions take), rows inserted, updated and deleted, WAL bytes; and its server
    processes, when it runs on this machine. None of this exists for SQLite."""

    FLUSH = 11.0
    """Seconds for every backend's row counters to reach pg_stat_database: an idle backend
    flushes them within 10 s (PostgreSQL 15's PGSTAT_IDLE_INTERVAL)."""

    def __init__(self, url: str) -> None:
        self.engine: Engine = create_engine(url)
        with self.engine.connect() as conn:
            backend = int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())
        stat = Path(f"/proc/{backend}/stat")
        self.postmaster = int(stat.read_text().rsplit(")", 1)[1].split()[1]) if stat.exists() else 0

    @staticmethod
    def of(url: str) -> Postgres | None:
        return Postgres(url) if url.startswith("postgresql") else None

    def processes(self) -> list[int]:
        return [self.postmaster, *children(self.postmaster)] if self.postmaster else []

    async def counters(self) -> DbCounters:
        await asyncio.sleep(self.FLUSH)
        with self.engine.connect() as conn:
            commits, rows = conn.execute(
                text(
                    "SELECT xact_commit, tup_inserted + tup_updated + tup_deleted "
                    "FROM pg_stat_database WHERE datname = current_database()"
                )
            ).one()
            xid = conn.execute(
                text("SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint")
            ).scalar_one()
            wal = conn.execute(
                text("SELECT pg_current_wal_insert_lsn() - '0/0'::pg_lsn")
            ).scalar_one()
        return DbCounters(int(xid), int(rows), int(wal), int(commits))

    def dispose(self) -> None:
        self.engine.dispose()


def count(store: Store, table: Any, prefix: str, *where: Any) -> int:
    """Rows of `table` for users whose ID starts with `prefix`."""
    query = select(func.count()).select_from(table).where(table.c.user_id.like(f"{prefix}%"))
    with store.engine.connect() as conn:
        return int(conn.execute(query.where(*where)).scalar_one())


async def until(
    measure: Callable[[], int], target: int, timeout: float, every: float = 0.25
) -> tuple[int, float]:
    """Poll `measure` until it reaches `target`: (last value, monotonic time it got there)."""
    deadline = time.monotonic() + timeout
    while True:
        value = await asyncio.to_thread(measure)
        if value >= target or time.monotonic() > deadline:
            return value, time.monotonic()
        await asyncio.sleep(every)


async def quiet(pids: list[int], limit: float = 300.0) -> float:
    """Wait until these processes together use under a fifth of a core (the workers' backlog
    from earlier rounds done); returns the seconds waited."""
    began = time.monotonic()
    while time.monotonic() - began < limit:
        before = [cpu_seconds(p) or 0.0 for p in pids]
        await asyncio.sleep(2.0)
        after = [cpu_seconds(p) or 0.0 for p in pids]
        if (sum(after) - sum(before)) / 2.0 < 0.2:
            break
    return time.monotonic() - began


def pollers(metrics_address: str) -> str:
    """What a worker's Temporal metrics say of its pollers and task slots (to explain a stall:
    a worker whose pollers dropped to 0 takes no more tasks)."""
    try:
        body = httpx.get(f"http://{metrics_address}/metrics", timeout=5).text
    except httpx.HTTPError as err:
        return f"metrics unavailable ({type(err).__name__})"
    pattern = re.compile(
        r'^temporal_(num_pollers|worker_task_slots_used)\{.*?(?:poller|worker)_type="(\w+)".*\}'
        r" (\S+)$",
        re.MULTILINE,
    )
    return "; ".join(f"{what} {kind} {value}" for what, kind, value in pattern.findall(body))


def add_profiles(store: Store, users: Iterable[str]) -> None:
    """Profiles with an address, so each journey's send really sends."""
    now = datetime.now(UTC)
    rows = [
        {"user_id": u, "email": f"{u}@example.test", "traits": {}, "updated_at": now} for u in users
    ]
    with store.engine.begin() as conn:
        conn.execute(ProfileRow.__table__.insert(), rows)  # type: ignore[attr-defined]


def start_process(args: list[str], env: dict[str, str], ready: str) -> subprocess.Popen[str]:
    """A process of the stack's kind; returns once it printed a line starting with `ready`."""
    process = subprocess.Popen(
        args, env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    assert process.stdout is not None
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if line.startswith(ready):
            return process
        if not line and process.poll() is not None:
            break
    stop([process])
    raise SystemExit(f"{' '.join(args)} did not start")


def stop(processes: Iterable[subprocess.Popen[Any]]) -> None:
    processes = [p for p in processes if p.poll() is None]
    for process in processes:
        process.send_signal(signal.SIGINT)
    for process in processes:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def event(name: str, user: str, message_id: str | None = None, **properties: Any) -> Event:
    return Event(
        name=name,
        user_id=user,
        message_id=message_id or f"m-{uuid.uuid4()}",
        timestamp=datetime.now(UTC),
        properties=properties,
    )


async def start_journey(
    client: Client, task_queue: str, journey: str, user: str, trigger: str, **properties: Any
) -> None:
    """The start the router makes for a trigger event: signal-with-start, search attributes."""
    await client.start_workflow(
        "Journey",
        JourneyInput(journey=journey, user_id=user),
        id=workflow_id(journey, user),
        task_queue=task_queue,
        start_signal="event",
        start_signal_args=[event(trigger, user, **properties)],
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
        search_attributes=start_attributes(journey, user),
    )


async def history_figures(client: Client, ids: list[str]) -> str:
    """Mean history events, bytes and state transitions of these open workflows."""
    infos = []
    for wid in ids:
        info = (await client.get_workflow_handle(wid).describe()).raw_description
        infos.append(info.workflow_execution_info)
    n = len(infos)
    return (
        f"{sum(i.history_length for i in infos) / n:4.1f} events, "
        f"{sum(i.history_size_bytes for i in infos) / n:6.0f} bytes, "
        f"{sum(i.state_transition_count for i in infos) / n:4.1f} state transitions"
    )


# The phases ---------------------------------------------------------------------------------


@dataclass
class Check:
    name: str
    passed: bool
    detail: str

    def line(self) -> str:
        return f"{'PASS' if self.passed else 'FAIL'}  {self.name}: {self.detail}"


class Scale:
    def __init__(self, stack: Stack, args: argparse.Namespace, client: Client) -> None:
        self.stack, self.args, self.client = stack, args, client
        self.store = Store(stack.database_url)
        self.pg = Postgres.of(stack.database_url)
        self.run = uuid.uuid4().hex[:6]
        self.checks: list[Check] = []
        self.figures: list[str] = []
        self.pids = dict(zip(stack.processes, stack.roles, strict=True))

    def role(self, name: str) -> list[int]:
        return [p.pid for p, r in self.pids.items() if r == name]

    def meter(self, **extra: list[int]) -> Meter:
        roles: dict[str, list[int] | Callable[[], list[int]]] = {
            "temporal": self.role("temporal"),
            "worker": self.role("worker"),
            "api": self.role("api"),
            **extra,
            "load": [os.getpid()],
        }
        if self.pg is not None and self.pg.postmaster:
            roles["postgres"] = self.pg.processes
        return Meter(roles)

    def say(self, line: str) -> None:
        self.figures.append(line)
        print(line, flush=True)

    async def counters(self) -> DbCounters | None:
        return await self.pg.counters() if self.pg is not None else None

    # 1. dedupe across replicas -------------------------------------------------------------

    async def dedupe(self) -> None:
        stack, pairs = self.stack, self.args.dedupe_pairs
        if len(stack.api_ports) < 2:
            self.say("dedupe across replicas: skipped (one API process; --apis 2)")
            return
        auth = {"Authorization": f"Bearer {stack.key}"}
        apis = [LoopbackClient("127.0.0.1", p, auth, size=pairs * 2) for p in stack.api_ports[:2]]
        prefix = f"dup-{self.run}-"
        answers: Counter[str] = Counter()

        async def pair(i: int, together: bool) -> None:
            user = f"{prefix}{i}"
            payload = {
                "userId": user,
                "event": "Signed Up",
                "messageId": f"dup-{self.run}-{i}",
                "timestamp": datetime.now(UTC).isoformat(),
                "context": {"traits": {"email": f"{user}@example.test"}},
            }
            first, second = apis[i % 2], apis[(i + 1) % 2]
            results: list[tuple[int, bytes]]
            if together:
                results = list(
                    await asyncio.gather(
                        first.post_json("/v1/track", payload),
                        second.post_json("/v1/track", payload),
                    )
                )
            else:
                results = [
                    await first.post_json("/v1/track", payload),
                    await second.post_json("/v1/track", payload),
                ]
            said = [json.loads(b).get("status", "?") if s == 200 else str(s) for s, b in results]
            answers[("at once: " if together else "in turn: ") + " + ".join(sorted(said))] += 1

        try:
            await asyncio.gather(*(pair(i, True) for i in range(pairs)))
            await asyncio.gather(*(pair(pairs + i, False) for i in range(pairs)))
        finally:
            for api in apis:
                await api.close()
        users = [f"{prefix}{i}" for i in range(2 * pairs)]
        outbox = OutboxMessage.__table__  # type: ignore[attr-defined]
        await until(lambda: count(self.store, outbox, prefix), len(users), 120)
        await asyncio.sleep(3)  # a second effect, if any, has time to show

        def per_user(table: Any, column: Any, *where: Any) -> Counter[str]:
            query = select(table.c.user_id, column).where(table.c.user_id.like(f"{prefix}%"))
            with self.store.engine.connect() as conn:
                rows = conn.execute(query.where(*where).group_by(table.c.user_id)).all()
            return Counter({user: int(n) for user, n in rows})

        receipts = EventReceipt.__table__  # type: ignore[attr-defined]
        summaries = EventSummary.__table__  # type: ignore[attr-defined]
        runs = JourneyRun.__table__  # type: ignore[attr-defined]
        effects = {
            "receipts": per_user(receipts, func.count(), receipts.c.event == "Signed Up"),
            "counted": per_user(
                summaries, func.max(summaries.c.count), summaries.c.event == "Signed Up"
            ),
            "entries": per_user(runs, func.count()),
            "emails": per_user(outbox, func.count()),
        }
        in_journey: Counter[str] = Counter()
        gate = asyncio.Semaphore(20)

        async def seen(user: str) -> None:
            async with gate:
                handle = self.client.get_workflow_handle(workflow_id("bench_welcome", user))
                state = await handle.query("state", result_type=JourneyState)
                in_journey[user] = state.events_received

        await asyncio.gather(*(seen(u) for u in users))
        effects["in journey"] = in_journey
        wrong = {
            what: sum(1 for u in users if found.get(u, 0) != 1) for what, found in effects.items()
        }
        self.checks.append(
            Check(
                "dedupe across replicas",
                not any(wrong.values()),
                f"{pairs} messages sent to both APIs at once and {pairs} to one then the other; "
                "users without exactly one "
                + ", ".join(f"{what} {n}" for what, n in wrong.items())
                + " (receipt, Signed Up counted, journey entry, email, event in the journey); "
                "answers " + ", ".join(f"{k} x{v}" for k, v in sorted(answers.items())),
            )
        )
        print(self.checks[-1].line(), flush=True)

    # 2. what an event costs the database -----------------------------------------------------

    async def api_writes(self) -> None:
        from bench.ingest import _poster

        n = self.args.api_burst
        poster = _poster(self.stack, 20, "lean")
        failures = 0

        async def post(i: int) -> None:
            nonlocal failures
            user = f"burst-{self.run}-{i}"
            status, _ = await poster.post_json(
                "/v1/track",
                {
                    "userId": user,
                    "event": "Product Added",
                    "messageId": f"burst-{self.run}-{i}",
                    "properties": {"product_id": "p1", "price": 25},
                    "context": {"traits": {"email": f"{user}@example.test"}},
                },
            )
            failures += status != 200

        before = await self.counters()
        meter = self.meter()
        meter.start()
        rate, _ = await closed_loop(n, 20, post)
        await asyncio.sleep(2)  # the workers' first task of each (cart) journey
        meter.stop()
        after = await self.counters()
        await poster.close()
        self.say(
            f"API events (Product Added, {n} through {len(self.stack.api_ports)} APIs, "
            f"{rate:.0f}/s, {failures} failed): CPU ms per event  {meter.per(n)}"
        )
        if before is not None and after is not None:
            self.say(f"  database per event: {(after - before).per(n)}")

    # 3. the worker's ceiling -----------------------------------------------------------------

    async def ceiling(self) -> float:
        """Returns our workers' rate (journeys entered per second, event-triggered)."""
        stack, n = self.stack, self.args.ceiling_journeys
        raw_queue = "bench-raw"
        raw_env = {**stack.env}
        command = [sys.executable, "-m", "bench.raw_worker", "--address",
                   f"127.0.0.1:{stack.temporal_port}", "--task-queue", raw_queue,
                   "--database-url", stack.database_url]  # fmt: skip
        raws = [start_process(command, raw_env, "raw worker:") for _ in range(stack.workers)]
        raw_db = raw_worker.database(stack.database_url)
        outbox = OutboxMessage.__table__  # type: ignore[attr-defined]
        runs = JourneyRun.__table__  # type: ignore[attr-defined]
        rates: dict[str, list[float]] = {"journeys": [], "raw": []}
        entered_rates: list[float] = []
        meters = {
            "journeys": self.meter(),
            "raw": self.meter(raw=[p.pid for p in raws]),
        }
        db: dict[str, DbCounters] = {}
        sample: dict[str, list[str]] = {"journeys": [], "raw": []}
        try:
            raw_client = await Client.connect(f"127.0.0.1:{stack.temporal_port}")

            async def ours(r: int) -> None:
                prefix = f"ceil-{self.run}-{r}-"
                users = [f"{prefix}{i}" for i in range(n)]
                add_profiles(self.store, users)
                before = await self.counters()
                meters["journeys"].start()
                began = time.monotonic()

                async def start(i: int) -> None:
                    await start_journey(
                        self.client, stack.task_queue, "bench_welcome", users[i], "Signed Up"
                    )

                entered_task = asyncio.create_task(
                    until(lambda: count(self.store, runs, prefix), n, 600)
                )
                await closed_loop(n, 50, start)
                done, at = await until(lambda: count(self.store, outbox, prefix), n, 600)
                meters["journeys"].stop()
                entered, entered_at = await entered_task
                rates["journeys"].append(done / (at - began))
                entered_rates.append(entered / (entered_at - began))
                after = await self.counters()
                if before is not None and after is not None:
                    db["journeys"] = db.get("journeys", NOTHING) + (after - before)
                sample["journeys"] += [workflow_id("bench_welcome", u) for u in users[:5]]

            async def raw(r: int) -> None:
                prefix = f"raw-{self.run}-{r}-"
                before = await self.counters()
                meters["raw"].start()
                began = time.monotonic()

                async def start(i: int) -> None:
                    user = f"{prefix}{i}"
                    await raw_client.start_workflow(
                        "RawJourney",
                        RawStart(user_id=user),
                        id=f"raw:{user}",
                        task_queue=raw_queue,
                        start_signal="event",
                        start_signal_args=[{"name": "Signed Up", "user_id": user}],
                    )

                await closed_loop(n, 50, start)
                done, at = await until(lambda: raw_worker.count_sends(raw_db, prefix), n, 600)
                meters["raw"].stop()
                rates["raw"].append(done / (at - began))
                after = await self.counters()
                if before is not None and after is not None:
                    db["raw"] = db.get("raw", NOTHING) + (after - before)
                sample["raw"] += [f"raw:{prefix}{i}" for i in range(5)]

            for r in range(2):  # ours, raw, raw, ours: a drifting background favours neither
                for kind in ("journeys", "raw") if r == 0 else ("raw", "journeys"):
                    await (ours(r) if kind == "journeys" else raw(r))
            ours_history = await history_figures(self.client, sample["journeys"])
            raw_history = await history_figures(raw_client, sample["raw"])
        finally:
            stop(raws)
            raw_db.dispose()
        ours_rate = _mean_rate(rates["journeys"])
        raw_rate = _mean_rate(rates["raw"])
        workers = f"{stack.workers} process{'es' if stack.workers > 1 else ''}"
        self.say(
            f"worker ceiling: the smallest journey (entry write, one activity, a timer), "
            f"{n} per round, 2 rounds each, started by signal-with-start"
        )
        self.say(
            f"  journeys worker ({workers})   {ours_rate:6.1f} journeys/s through entry, send "
            f"and timer (rounds {_rates(rates['journeys'])}); entries alone "
            f"{_mean_rate(entered_rates):.1f}/s"
        )
        self.say(
            f"  bare SDK worker ({workers})   {raw_rate:6.1f} journeys/s "
            f"(rounds {_rates(rates['raw'])})"
        )
        self.say(f"  ratio journeys / bare SDK     {ours_rate / raw_rate:6.2f}")
        self.say(f"  CPU ms per journey, journeys: {meters['journeys'].per(2 * n)}")
        self.say(f"  CPU ms per journey, bare SDK: {meters['raw'].per(2 * n)}")
        self.say(f"  history per open journey, journeys: {ours_history}")
        self.say(f"  history per open journey, bare SDK: {raw_history}")
        if db:
            self.say(f"  database per journey, journeys: {db['journeys'].per(2 * n)}")
            self.say(f"  database per journey, bare SDK: {db['raw'].per(2 * n)}")
        return ours_rate

    # 4. segment entry --------------------------------------------------------------------------

    async def segment(self, event_rate: float) -> None:
        n, stack = self.args.segment_users, self.stack
        now = datetime.now(UTC)
        prefix = f"seg-{self.run}-"
        users = [f"{prefix}{i:06d}" for i in range(n)]
        add_profiles(self.store, users)
        summaries = [
            {"user_id": u, "event": name, "count": 5, "first_seen": now - first * DAY,
             "last_seen": now - last * DAY, "last_properties": {}}
            for u in users
            for name, first, last in (("Dashboard Viewed", 40, 1), ("Project Created", 30, 2))
        ]  # fmt: skip
        with self.store.engine.begin() as conn:
            conn.execute(EventSummary.__table__.insert(), summaries)  # type: ignore[attr-defined]
        runs = JourneyRun.__table__  # type: ignore[attr-defined]
        meter = self.meter()
        meter.start()
        began = time.monotonic()
        progress: SegmentProgress = await self.client.execute_workflow(
            "SegmentEntry",
            SegmentRunInput(journey="feature_adoption"),
            id=f"bench-segment-{self.run}",
            task_queue=stack.task_queue,
            result_type=SegmentProgress,
        )
        run_seconds = time.monotonic() - began
        entered, at = await until(lambda: count(self.store, runs, prefix), n, 900, every=0.5)
        meter.stop()
        segment_rate = entered / (at - began)
        self.say(
            f"segment entry (feature_adoption, {n} users): the run selected {progress.selected} "
            f"in {progress.pages} pages and started {progress.started} in {run_seconds:.1f} s "
            f"({progress.started / run_seconds:.0f} starts/s); {entered} entered in "
            f"{at - began:.1f} s: {segment_rate:.1f} journeys entered/s"
        )
        self.say(f"  CPU ms per journey, segment run: {meter.per(max(1, entered))}")

        # The same journey started from here, as the segment's activity starts each one.
        direct = f"segd-{self.run}-"
        users = [f"{direct}{i:06d}" for i in range(n)]
        add_profiles(self.store, users)
        meter = self.meter()
        meter.start()
        began = time.monotonic()

        async def start(i: int) -> None:
            user = users[i]
            entry = event(SEGMENT_ENTERED, user, f"segment:direct:{user}", segment="direct")
            await self.client.start_workflow(
                "Journey",
                JourneyInput(journey="feature_adoption", user_id=user, event=entry),
                id=workflow_id("feature_adoption", user),
                task_queue=stack.task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
                search_attributes=start_attributes("feature_adoption", user),
            )

        await closed_loop(n, 32, start)
        entered, at = await until(lambda: count(self.store, runs, direct), n, 900, every=0.5)
        meter.stop()
        direct_rate = entered / (at - began)
        self.say(
            f"  the same journey started directly ({n}, 32 in flight as the segment's "
            f"activity starts them): {direct_rate:.1f} journeys entered/s"
        )
        self.say(f"  CPU ms per journey, direct starts: {meter.per(max(1, entered))}")
        self.say(
            f"  segment entry / event-triggered entry (bench_welcome, above): "
            f"{segment_rate:.1f} / {event_rate:.1f} = {segment_rate / event_rate:.2f}"
        )

    # 5. exactly once across a worker's death -------------------------------------------------

    async def exactly_once(self) -> None:
        stack, n = self.stack, self.args.kill_sends
        if stack.workers < 2:
            self.say("exactly once across kill -9: skipped (one worker; --workers 2)")
            return
        port = free_port()
        esp = subprocess.Popen(
            [sys.executable, "-m", "bench.esp", "--port", str(port), "--hold", str(self.args.hold)],
            cwd=ROOT, env=stack.env, start_new_session=True,
        )  # fmt: skip
        Stack._wait_port(port)
        queue = f"bench-kill-{self.run}"
        env = {
            **stack.env,
            "JOURNEYS_TASK_QUEUE": queue,
            "JOURNEYS_JOURNEY_MODULES": '["bench.journeys"]',
            "JOURNEYS_EMAIL_PROVIDER": "postmark",
            "JOURNEYS_PROVIDER_BASE_URL": f"http://127.0.0.1:{port}",
            "JOURNEYS_PROVIDER_API_KEY": "bench-postmark-token",
        }
        workers = [
            start_process(
                [str(BIN / "journeys"), "worker"],
                {**env, "JOURNEYS_METRICS_ADDRESS": f"127.0.0.1:{free_port()}"},
                "worker:",
            )
            for _ in range(2)
        ]
        prefix = f"kill-{self.run}-"
        users = [f"{prefix}{i}" for i in range(n)]
        add_profiles(self.store, users)
        outbox = OutboxMessage.__table__  # type: ignore[attr-defined]
        http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10)
        try:

            async def start(i: int) -> None:
                await start_journey(self.client, queue, "bench_welcome", users[i], "Signed Up")

            starting = asyncio.create_task(closed_loop(n, 50, start))
            deadline = time.monotonic() + 120
            in_flight = 0
            while time.monotonic() < deadline:
                in_flight = (await http.get("/deliveries")).json()["in_flight"]
                if in_flight >= min(20, n // 4):
                    break
                await asyncio.sleep(0.05)
            workers[0].send_signal(signal.SIGKILL)  # mid-send: no cleanup, nothing recorded
            workers[0].wait()
            killed_at = time.monotonic()
            await starting
            sending = outbox.c.status == "sending"
            _, at = await until(
                lambda: (
                    count(self.store, outbox, prefix) - count(self.store, outbox, prefix, sending)
                ),
                n,
                300,
                every=0.5,
            )
            await asyncio.sleep(2)
            received: dict[str, int] = (await http.get("/deliveries")).json()["received"]
            with self.store.engine.connect() as conn:
                rows = conn.execute(
                    select(outbox.c.user_id, outbox.c.idempotency_key, outbox.c.status).where(
                        outbox.c.user_id.like(f"{prefix}%")
                    )
                ).all()
        finally:
            await http.aclose()
            stop([*workers, esp])
        per_key = Counter(key for _, key, _ in rows)
        per_user = Counter(user for user, _, _ in rows)
        statuses = Counter(status for _, _, status in rows)
        ours = {key for _, key, _ in rows}
        delivered_twice = sum(1 for k, c in received.items() if k in ours and c > 1)
        lost = sum(1 for u in users if per_user.get(u, 0) == 0)
        doubled = sum(1 for c in per_key.values() if c > 1) + sum(
            1 for c in per_user.values() if c > 1
        )
        landed = statuses.get("unknown", 0)
        calls = sum(received.get(k, 0) for k in ours)
        unknown_reached = sum(
            1 for _, key, status in rows if status == "unknown" and received.get(key, 0)
        )
        passed = not doubled and not delivered_twice and not lost and landed > 0
        self.checks.append(
            Check(
                "exactly once across kill -9",
                passed,
                f"{n} journeys sending through 2 workers, one SIGKILLed with {in_flight} sends "
                f"in flight at the provider, the other carrying on; {len(per_key)} outbox rows, "
                f"{max(per_key.values(), default=0)} at most per idempotency key and per journey "
                f"({doubled} doubled); the provider received {calls} calls, "
                f"{delivered_twice} key twice; statuses {dict(statuses)} "
                f"(unknown: killed mid-call, recorded and not resent; {unknown_reached} of them "
                f"had reached the provider); {lost} journeys without "
                f"their send; settled {at - killed_at:.0f} s after the kill"
                + ("" if landed else "; inconclusive: the kill caught no send mid-call"),
            )
        )
        print(self.checks[-1].line(), flush=True)

    async def close(self) -> None:
        self.store.dispose()
        if self.pg is not None:
            self.pg.dispose()


def _mean_rate(rates: list[float]) -> float:
    return sum(rates) / len(rates) if rates else 0.0


def _rates(rates: list[float]) -> str:
    return ", ".join(f"{r:.1f}" for r in rates)


def shipped_histories() -> list[str]:
    """Events and bytes of each shipped journey's whole history, as recorded in tests/histories
    (payloads unencrypted, as the tests run), without the events time skipping adds (which a
    production history has not), and how many of them are search-attribute upserts (each a
    visibility write: JourneyStep at every step)."""
    skipping = {
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TIME_SKIPPING_TRANSITIONED,
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_OPTIONS_UPDATED,
    }
    upsert = EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES
    folder = ROOT / "tests" / "histories"
    lines = []
    for path in sorted(folder.glob("*.completed.json")):
        if ".before-" in path.name:
            continue
        history = WorkflowHistory.from_json(path.stem, path.read_text())
        events = [e for e in history.events if e.event_type not in skipping]
        size = sum(e.ByteSize() for e in events)
        upserts = sum(1 for e in events if e.event_type == upsert)
        lines.append(
            f"{path.name.split('.')[0]} {len(events)} events ({upserts} upserts) {size} bytes"
        )
    return lines


async def run(stack: Stack, args: argparse.Namespace) -> None:
    client = await Client.connect(
        f"127.0.0.1:{stack.temporal_port}", data_converter=stack.data_converter()
    )
    scale = Scale(stack, args, client)
    print(LINE)
    print(
        f"beyond one machine: {len(stack.api_ports)} API processes behind one round-robin load "
        f"generator, {stack.workers} worker processes, one dev server, database "
        f"{stack.database_url.split(':')[0]}; {os.cpu_count()} cores, shared"
    )
    print(LINE, flush=True)
    try:
        waited = await quiet(scale.role("temporal") + scale.role("worker"))
        print(f"(waited {waited:.0f} s for the workers to finish earlier rounds' journeys)")
        await scale.dedupe()
        await scale.api_writes()
        rate = await scale.ceiling()
        await scale.segment(rate)
        await scale.exactly_once()
        scale.say("history of each shipped journey, whole (tests/histories): " + "; ".join(
            shipped_histories()
        ))  # fmt: skip
    finally:
        await scale.close()
    print(LINE)
    for check in scale.checks:
        print(check.line())
    for line in scale.figures:
        print(line)
    print(LINE, flush=True)
