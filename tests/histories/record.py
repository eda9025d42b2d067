"""Record the replay fixtures: real runs of every shipped journey, saved as Temporal histories.

    .venv/bin/python -m tests.histories.record                  # all of them
    .venv/bin/python -m tests.histories.record --only onboarding  # one journey's runs

Each journey runs through its steps, converts early, and (for some) runs held out, on the
Temporal dev server with time skipping, through the same ingestion path the webhook uses, with
fixed user IDs, message IDs and properties and synthetic addresses (@example.test). Every run is
driven to its close, then its history is written as `<journey>.<case>.json`
(`WorkflowHistory.to_json()`), and `index.json` records its workflow ID and what it did.

tests/replay replays every file against the current code. Recording overwrites the files it
writes and nothing else. Before re-recording a journey whose steps changed behind
`workflow.patched`, rename its old files and their index.json keys (`onboarding.completed.json`
to `onboarding.completed.before-tips-at-once.json`): they keep proving that journeys started on
the old code still run, until the patch is retired (docs/deploys.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import TimeSkipper, WorkflowEnvironment

from activities.holdout import assign_group
from activities.sending import SendingActivities
from activities.store import Store
from activities.templates import Renderer
from starter.calls import IdentifyCall, TrackCall
from starter.dev import temporal_binary
from starter.ingest import Ingestor
from starter.routing import Router
from tests.conftest import NO_LIMITS, SERVER_ARGS, settle
from worker import ACTIVITY_THREADS, create_worker, ensure_search_attributes
from workflows import registry
from workflows.identity import workflow_id
from workflows.models import JourneyResult, SegmentProgress, SegmentRunInput

HERE = Path(__file__).resolve().parent
INDEX = "index.json"
"""File name -> journey, workflow ID and what the run did."""
TEMPLATES = HERE.parents[1] / "templates"
TASK_QUEUE = "replay-fixtures"

MINUTE, HOUR, DAY = timedelta(minutes=1), timedelta(hours=1), timedelta(days=1)
CHAIR = {"product_id": "chair", "name": "Oak chair", "price": 120, "rating": 4.8}
LAMP = {"product_id": "lamp", "name": "Brass lamp", "price": 45}
SOFA = {"product_id": "sofa", "name": "Velvet sofa", "price": 899}


@dataclass
class Kept:
    """A finished run to save: its file name, workflow ID and a line on what it did."""

    file: str
    journey: str
    workflow_id: str
    what: str


@dataclass
class Recorder:
    """Drives journeys as a customer's backend would, and keeps the runs to save."""

    client: Client
    store: Store
    ingestor: Ingestor
    task_queue: str
    prefix: str = "fx"
    kept: list[Kept] = field(default_factory=list)
    _sent: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._skipper = TimeSkipper(self.client)

    def user(self, journey: str, case: str, group: str = "treatment") -> str:
        """A fixed user ID that `journey`'s holdout puts in `group`."""
        holdout = registry.get(journey).holdout
        for n in range(1, 1000):
            user = f"{self.prefix}-{case}-{n}"
            if assign_group(journey, user, holdout) == group:
                return user
        raise AssertionError("no user in that group")  # pragma: no cover

    async def identify(self, user: str, **traits: Any) -> None:
        traits.setdefault("email", f"{user}@example.test")
        await self.ingestor.identify(
            IdentifyCall(userId=user, traits=traits, messageId=f"{user}-identify")
        )

    async def track(
        self, user: str, event: str, properties: dict[str, Any] | None = None, *,
        ago: timedelta | None = None,
    ) -> None:  # fmt: skip
        """One track call with a fixed message ID; `ago` backdates it (history for segments)."""
        self._sent[user] = self._sent.get(user, 0) + 1
        await self.ingestor.track(
            TrackCall(
                userId=user,
                event=event,
                properties=properties or {},
                messageId=f"{user}-{self._sent[user]}",
                timestamp=datetime.now(UTC) - ago if ago else None,
            )
        )
        for journey in registry.all_journeys():
            if event in journey.events_of_interest():
                await self._settle(journey.name, user)

    async def advance(self, journey: str, user: str, by: timedelta) -> None:
        """Move that journey's clock forward by `by` (time skipping), then let it react."""
        handle = self.client.get_workflow_handle(workflow_id(journey, user))
        await self._skipper.fast_forward(handle, by)
        await settle(handle)

    async def keep(self, journey: str, case: str, user: str, outcome: str) -> JourneyResult:
        """Wait for the run to close, check its outcome, and keep it for saving."""
        wid = workflow_id(journey, user)
        handle = self.client.get_workflow_handle(wid, result_type=JourneyResult)
        result = await asyncio.wait_for(handle.result(), 30)
        if result.outcome != outcome:
            raise AssertionError(f"{journey}.{case}: {result.outcome} ({result.reason})")
        sends = [m.template for m in self.store.outbox(user) if m.status == "sent"]
        runs = self.store.runs(user_id=user)  # none when the user never entered
        held = [s.name for r in runs for s in self.store.steps(r.run_id) if s.status == "held_out"]
        what = f"{result.group or 'not entered'}: sent {', '.join(sends) or 'nothing'}"
        if held:
            what += f"; held out {', '.join(held)}"
        what += f"; {result.outcome}" + (f" ({result.reason})" if result.reason else "")
        self.kept.append(Kept(f"{journey}.{case}.json", journey, wid, what))
        return result

    async def segment_run(self, journey: str, page_size: int) -> SegmentProgress:
        """One run of the journey's segment, as its schedule would start it; kept for saving."""
        wid = f"segment-{journey}-{self.prefix}"
        progress: SegmentProgress = await self.client.execute_workflow(
            "SegmentEntry",
            SegmentRunInput(journey=journey, page_size=page_size),
            id=wid,
            task_queue=self.task_queue,
            result_type=SegmentProgress,
        )
        what = f"{progress.pages} pages, selected {progress.selected}, started {progress.started}"
        self.kept.append(Kept(f"SegmentEntry.{journey}.json", "SegmentEntry", wid, what))
        return progress

    async def histories(self) -> dict[str, WorkflowHistory]:
        """The kept runs' histories, by file name."""
        return {
            kept.file: await self.client.get_workflow_handle(kept.workflow_id).fetch_history()
            for kept in self.kept
        }

    async def _settle(self, journey: str, user: str) -> None:
        handle = self.client.get_workflow_handle(workflow_id(journey, user))
        try:
            await settle(handle)
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:  # none for this user: nothing to wait for
                raise


# The runs, one function per journey ----------------------------------------------------------


async def cart_recovery(rec: Recorder) -> None:
    j = "cart_recovery"
    user = rec.user(j, "cart-completed")
    await rec.identify(user, first_name="Ada")
    await rec.track(user, "Product Added", CHAIR)
    await rec.advance(j, user, 30 * MINUTE)
    await rec.track(user, "Product Added", LAMP)
    await rec.advance(j, user, 10 * MINUTE)
    await rec.track(user, "Product Removed", LAMP)
    await rec.advance(j, user, 60 * MINUTE)  # reminder
    await rec.advance(j, user, 23 * HOUR)  # social proof, 24 h after the last change
    await rec.advance(j, user, 48 * HOUR)  # incentive, 72 h after it
    await rec.advance(j, user, 4 * DAY + 2 * HOUR)  # the goal window closes, 7 d after entry
    await rec.keep(j, "completed", user, "completed")

    user = rec.user(j, "cart-converted")
    await rec.identify(user)
    await rec.track(user, "Product Added", CHAIR)
    await rec.advance(j, user, 61 * MINUTE)  # reminder
    await rec.advance(j, user, 2 * HOUR)
    await rec.track(user, "Order Completed", {"order_id": "o-1", "revenue": 120.0})
    await rec.keep(j, "converted", user, "converted")  # closed at once

    user = rec.user(j, "cart-refused")
    await rec.identify(user)
    await rec.track(user, "Product Added", CHAIR)
    await rec.advance(j, user, 61 * MINUTE)
    await rec.track(user, "Order Completed", {"order_id": "o-4", "revenue": 120.0})
    await rec.track(user, "Product Added", LAMP)  # inside the re-entry window
    await rec.advance(j, user, 61 * MINUTE)
    await rec.keep(j, "refused", user, "not_entered")

    user = rec.user(j, "cart-bought-first")
    await rec.identify(user)
    await rec.track(user, "Product Added", CHAIR)
    await rec.advance(j, user, 10 * MINUTE)
    await rec.track(user, "Order Completed", {"order_id": "o-5", "revenue": 120.0})
    await rec.keep(j, "not_entered", user, "not_entered")

    user = rec.user(j, "cart-holdout", "holdout")
    await rec.identify(user)
    await rec.track(user, "Product Added", CHAIR)
    for step in (61 * MINUTE, 23 * HOUR, 48 * HOUR, 4 * DAY + 2 * HOUR):
        await rec.advance(j, user, step)
    await rec.keep(j, "holdout", user, "completed")

    user = rec.user(j, "cart-small")
    await rec.identify(user)
    await rec.track(user, "Product Added", {"product_id": "socks", "price": 4, "quantity": 2})
    await rec.advance(j, user, 61 * MINUTE)
    await rec.keep(j, "suppressed", user, "suppressed")


async def onboarding(rec: Recorder) -> None:
    j = "onboarding"
    user = rec.user(j, "onb-completed")
    await rec.identify(user, first_name="Ada")
    await rec.track(user, "Signed Up")  # welcome at once
    await rec.advance(j, user, 2 * DAY)  # first tips
    await rec.advance(j, user, 3 * DAY)  # second tips
    await rec.advance(j, user, 9 * DAY)  # the goal window closes
    await rec.keep(j, "completed", user, "completed")

    user = rec.user(j, "onb-converted")
    await rec.identify(user)
    await rec.track(user, "Signed Up")
    await rec.advance(j, user, 1 * DAY)
    await rec.track(user, "Activated")
    await rec.keep(j, "converted", user, "converted")


async def browse_abandonment(rec: Recorder) -> None:
    j = "browse_abandonment"
    user = rec.user(j, "browse-completed")
    await rec.identify(user)
    for _ in range(3):
        await rec.track(user, "Product Viewed", SOFA)
    await rec.advance(j, user, HOUR)  # the offer
    await rec.advance(j, user, 7 * DAY)  # the goal window
    await rec.keep(j, "completed", user, "completed")

    user = rec.user(j, "browse-converted")
    await rec.identify(user)
    for _ in range(3):
        await rec.track(user, "Product Viewed", SOFA)
    await rec.advance(j, user, 30 * MINUTE)
    await rec.track(user, "Order Completed", {"order_id": "o-2", "revenue": 899})
    await rec.keep(j, "converted", user, "converted")

    user = rec.user(j, "browse-bought-first")
    await rec.identify(user)
    for _ in range(2):
        await rec.track(user, "Product Viewed", SOFA)
    await rec.track(user, "Order Completed", {"order_id": "o-3", "revenue": 899})
    await rec.keep(j, "not_entered", user, "not_entered")


async def upgrade_prompt(rec: Recorder) -> None:
    j = "upgrade_prompt"
    for case, outcome in (("completed", "completed"), ("converted", "converted")):
        user = rec.user(j, f"upgrade-{case}")
        await rec.identify(user, plan="starter")
        for invitee in "abc":
            await rec.track(user, "Invite Sent", {"invitee_email": f"{invitee}@example.test"})
        if outcome == "converted":
            await rec.advance(j, user, 2 * DAY)
            await rec.track(user, "Plan Upgraded", {"plan": "team", "revenue": 49})
        else:
            await rec.advance(j, user, 15 * DAY)  # the goal window
        await rec.keep(j, case, user, outcome)


async def trial_expiring(rec: Recorder) -> None:
    j = "trial_expiring"
    user = rec.user(j, "trial-completed")
    await rec.identify(user)
    trial_end = (datetime.now(UTC) + 10 * DAY).isoformat()
    await rec.track(user, "Trial Started", {"plan": "pro", "trial_end": trial_end})
    await rec.advance(j, user, 7 * DAY)  # 3 days before the end
    await rec.advance(j, user, 40 * DAY)  # the goal window closes
    await rec.keep(j, "completed", user, "completed")

    user = rec.user(j, "trial-converted")
    await rec.identify(user)
    await rec.track(user, "Trial Started", {"plan": "pro", "trial_end": trial_end})
    await rec.advance(j, user, DAY)
    await rec.track(user, "Plan Upgraded", {"plan": "pro", "revenue": 29})
    await rec.keep(j, "converted", user, "converted")


async def win_back(rec: Recorder) -> None:
    j = "win_back"
    user = rec.user(j, "winback-completed")
    await rec.identify(user)
    await rec.track(user, "Subscription Cancelled", {"plan": "pro"})
    for step in (7 * DAY, 14 * DAY, 24 * DAY):  # feedback, what's new, offer: days 7, 21, 45
        await rec.advance(j, user, step)
    await rec.advance(j, user, 46 * DAY)  # the goal window
    await rec.keep(j, "completed", user, "completed")

    user = rec.user(j, "winback-converted")
    await rec.identify(user)
    await rec.track(user, "Subscription Cancelled", {"plan": "pro"})
    await rec.advance(j, user, 7 * DAY)  # feedback
    await rec.track(user, "Subscription Started", {"plan": "pro", "revenue": 29})
    await rec.keep(j, "converted", user, "converted")


async def feature_adoption(rec: Recorder) -> None:
    """Entered by a segment run (recorded too): two treated users and one held out."""
    j = "feature_adoption"
    stays, adopts = rec.user(j, "adopt-completed"), rec.user(j, "adopt-converted")
    held = rec.user(j, "adopt-holdout", "holdout")
    for user in (stays, adopts, held):
        await rec.identify(user, first_name="Ada")
        await rec.track(user, "Dashboard Viewed", ago=20 * DAY)
        await rec.track(user, "Project Created", ago=10 * DAY)
        await rec.track(user, "Dashboard Viewed", ago=1 * DAY)
    progress = await rec.segment_run(j, page_size=2)
    if progress.started != 3:
        raise AssertionError(f"segment run started {progress.started} journeys, not 3")

    for user in (stays, held):
        for step in (5 * DAY, 5 * DAY, 21 * DAY):  # tutorial, personal note, window closes
            await rec.advance(j, user, step)
    await rec.keep(j, "completed", stays, "completed")
    await rec.keep(j, "holdout", held, "completed")

    await rec.advance(j, adopts, 5 * DAY)  # tutorial
    await rec.track(adopts, "Report Created")
    await rec.keep(j, "converted", adopts, "converted")


Scenario = Callable[[Recorder], Awaitable[None]]
SCENARIOS: dict[str, Scenario] = {
    "browse_abandonment": browse_abandonment,
    "cart_recovery": cart_recovery,
    "feature_adoption": feature_adoption,
    "onboarding": onboarding,
    "trial_expiring": trial_expiring,
    "upgrade_prompt": upgrade_prompt,
    "win_back": win_back,
}
"""Journey name -> the runs that record it (feature_adoption's also records a segment run)."""


# Recording -----------------------------------------------------------------------------------


async def record(out: Path, only: list[str] | None = None) -> list[Kept]:
    """Run the scenarios on a fresh dev server and write their histories and index to `out`."""
    journeys = registry.load_modules(["workflows.journeys"])
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_binary(),
        dev_server_extra_args=SERVER_ARGS,
        data_converter=pydantic_data_converter,
    )
    try:
        await ensure_search_attributes(env.client)
        with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(ACTIVITY_THREADS) as pool:
            store = Store(f"sqlite:///{tmp}/journeys.db")
            store.migrate()
            router = Router(env.client, store, journeys, TASK_QUEUE)
            rec = Recorder(env.client, store, Ingestor(store, router), TASK_QUEUE)
            sending = SendingActivities(store, Renderer(TEMPLATES), policy=NO_LIMITS)
            async with create_worker(env.client, store, TASK_QUEUE, pool, sending):
                for name, scenario in SCENARIOS.items():
                    if only is None or name in only:
                        print(f"recording {name}", flush=True)
                        await scenario(rec)
                histories = await rec.histories()
            store.dispose()
    finally:
        await env.shutdown()
    write(out, rec.kept, histories)
    return rec.kept


def write(out: Path, kept: list[Kept], histories: dict[str, WorkflowHistory]) -> None:
    """Write each history and its index.json entry. Nothing else is touched: histories kept
    from older code (renamed, with their index entries) stay in the check."""
    index_path = out / INDEX
    index: dict[str, Any] = json.loads(index_path.read_text()) if index_path.is_file() else {}
    for item in kept:
        (out / item.file).write_text(to_json(histories[item.file]))
        index[item.file] = {
            "journey": item.journey,
            "workflow_id": item.workflow_id,
            "what": item.what,
        }
    index_path.write_text(json.dumps(dict(sorted(index.items())), indent=2) + "\n")


def to_json(history: WorkflowHistory) -> str:
    """`WorkflowHistory.to_json()`'s content, one event per line: smaller, and diffs by event."""
    events = history.to_json_dict()["events"]
    lines = ",\n".join(json.dumps(event, separators=(",", ":")) for event in events)
    return f'{{"events": [\n{lines}\n]}}\n'


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.histories.record", description=__doc__)
    parser.add_argument(
        "--only", action="append", choices=sorted(SCENARIOS), help="re-record this journey only"
    )
    args = parser.parse_args(argv)
    kept = asyncio.run(record(HERE, args.only))
    for item in kept:
        print(f"{item.file:40} {item.what}")


if __name__ == "__main__":
    main()
