"""Segment entry benchmark: select and start journeys out of a million profiles.

    .venv/bin/python -m bench.segments [--profiles 1000000] [--database-url URL]

1. Fills the profile store with N users' event summaries (about 3 rows each), drawn from
   known kinds of users, so the number each segment must select is known exactly.
2. Times a full selection pass of each shipped segment (feature_adoption, win_back) with the
   SQL the schedule runs, page by page, and checks the count against what was generated.
3. Starts the embedded stack (Temporal dev server on SQLite, worker, API, as processes) and runs
   feature_adoption's segment workflow as its schedule would: selection plus a journey start
   per matching user. Times the run, and how long until every journey recorded its entry.
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from temporalio.client import Client

from activities.segments import select_users
from activities.store import EventSummary, JourneyRun, ProfileRow, Store
from bench.ingest import ROOT, Stack
from workflows.journey import Journey
from workflows.journeys import FeatureAdoption, WinBack
from workflows.models import SegmentProgress, SegmentRunInput

DAY = timedelta(days=1)

KINDS: list[tuple[str, float, list[tuple[str, int, int]]]] = [
    # (kind, share, [(event, first seen days ago, last seen days ago)])
    ("adoption_match", 0.01, [("Dashboard Viewed", 40, 1), ("Project Created", 30, 2)]),
    ("win_back_match", 0.01, [("Dashboard Viewed", 200, 90), ("Project Created", 150, 95)]),
    ("uses_reports", 0.40, [("Dashboard Viewed", 90, 0), ("Project Created", 60, 3),
                            ("Report Created", 20, 1)]),
    ("one_feature", 0.30, [("Dashboard Viewed", 60, 0), ("Page Viewed", 60, 0)]),
    ("new", 0.10, [("Dashboard Viewed", 5, 0), ("Project Created", 4, 1)]),
    ("dormant_brief", 0.18, [("Dashboard Viewed", 100, 90), ("Page Viewed", 95, 90)]),
]  # fmt: skip


def fill(store: Store, profiles: int, now: datetime) -> dict[str, int]:
    """Insert `profiles` users of the kinds above; returns how many of each kind."""
    rng = random.Random(7)
    summaries = EventSummary.__table__  # type: ignore[attr-defined]
    people = ProfileRow.__table__  # type: ignore[attr-defined]
    counts = {kind: 0 for kind, _, _ in KINDS}
    weights = [share for _, share, _ in KINDS]
    chunk = 20_000
    with store.engine.begin() as conn:
        for begin in range(0, profiles, chunk):
            rows: list[dict[str, Any]] = []
            users: list[dict[str, Any]] = []
            for i in range(begin, min(begin + chunk, profiles)):
                user = f"user-{i:08d}"
                kind, _, events = rng.choices(KINDS, weights)[0]
                counts[kind] += 1
                users.append(
                    {"user_id": user, "email": f"{user}@example.test", "traits": {},
                     "updated_at": now}
                )  # fmt: skip
                jitter = timedelta(minutes=rng.randint(0, 600))
                for event, first, last in events:
                    rows.append(
                        {"user_id": user, "event": event, "count": rng.randint(1, 40),
                         "first_seen": now - first * DAY - jitter,
                         "last_seen": now - last * DAY - jitter, "last_properties": {}}
                    )  # fmt: skip
            conn.execute(people.insert(), users)
            conn.execute(summaries.insert(), rows)
    return counts


def select_all(store: Store, journey: type[Journey], now: datetime) -> tuple[int, float, int]:
    """A full pass of the journey's segment, in its pages: (users, seconds, pages)."""
    assert journey.segment is not None and journey.reentry is not None
    after, total, pages = None, 0, 0
    began = time.perf_counter()
    while True:
        page = select_users(
            store, journey.segment, journey.name, journey.reentry, now, after,
            journey.segment.page_size,
        )  # fmt: skip
        pages += 1
        total += len(page)
        if len(page) < journey.segment.page_size:
            return total, time.perf_counter() - began, pages
        after = page[-1]


async def start_journeys(stack: Stack, store: Store, expected: int) -> None:
    client = await Client.connect(
        f"127.0.0.1:{stack.temporal_port}", data_converter=stack.data_converter()
    )
    began = time.perf_counter()
    progress: SegmentProgress = await client.execute_workflow(
        "SegmentEntry",
        SegmentRunInput(journey="feature_adoption"),
        id=f"bench-segment-{uuid.uuid4().hex[:6]}",
        task_queue=stack.task_queue,
        result_type=SegmentProgress,
    )
    run_seconds = time.perf_counter() - began
    print(
        f"segment run:    {progress.pages} pages, {progress.selected} selected, "
        f"{progress.started} journeys started in {run_seconds:.1f} s "
        f"({progress.started / run_seconds:.0f} starts/s)"
    )
    runs = JourneyRun.__table__  # type: ignore[attr-defined]
    while True:
        with store.engine.connect() as conn:
            entered = conn.execute(select(func.count()).select_from(runs)).scalar_one()
        if entered >= progress.started or time.perf_counter() - began > 1800:
            break
        await asyncio.sleep(0.5)
    all_seconds = time.perf_counter() - began
    print(
        f"entries:        {entered} of {progress.started} journeys recorded their entry "
        f"{all_seconds:.1f} s after the run began ({entered / all_seconds:.0f}/s)"
    )
    print(f"check:          started {progress.started}, expected {expected}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profiles", type=int, default=1_000_000)
    parser.add_argument("--database-url", default=None, help="default: a SQLite file")
    parser.add_argument("--no-start", action="store_true", help="measure the selection only")
    args = parser.parse_args()
    now = datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix="journeys-bench-") as folder:
        url = args.database_url or f"sqlite:///{Path(folder) / 'journeys.db'}"
        store = Store(url)
        store.migrate()
        began = time.perf_counter()
        counts = fill(store, args.profiles, now)
        rows = sum(len(events) * counts[kind] for kind, _, events in KINDS)
        print(
            f"profile store:  {args.profiles} profiles, {rows} event summaries "
            f"({store.engine.dialect.name}), filled in {time.perf_counter() - began:.0f} s"
        )
        for journey, kind in ((FeatureAdoption, "adoption_match"), (WinBack, "win_back_match")):
            selected, seconds, pages = select_all(store, journey, now)
            print(
                f"select {journey.name:16} {selected:>7} users in {pages} pages, "
                f"{seconds:6.1f} s ({args.profiles / seconds:,.0f} profiles/s); "
                f"expected {counts[kind]}"
            )
        if args.no_start:
            return
        stack = Stack(Path(folder), url)
        stack.env["JOURNEYS_TEMPLATES_DIR"] = str(ROOT / "templates")
        stack.start()
        try:
            asyncio.run(start_journeys(stack, store, counts["adoption_match"]))
        finally:
            stack.stop()
            store.dispose()


if __name__ == "__main__":
    main()
